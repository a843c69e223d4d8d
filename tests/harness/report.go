package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReportDirEnv names the directory where tests leave what a passing run
// should still show (`go test ./...` prints nothing of a package that
// passes): `make test` sets it and prints the files at the end.
const ReportDirEnv = "HOSTCTL_TEST_REPORTS"

// Report adds text under title to the test run's report (nothing when
// ReportDirEnv is not set; the text is logged in any case).
func Report(t testing.TB, title, text string) {
	t.Helper()
	t.Logf("%s:\n%s", title, text)
	dir := os.Getenv(ReportDirEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("report: %v", err)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".txt"
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("report: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s: %s\n%s\n\n", t.Name(), title, strings.TrimRight(text, "\n"))
}

// Skip skips the test for want of something this machine lacks, and says
// so in the run's report, so that a skip is seen in a passing run.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	Report(t, "skipped", reason)
	t.Skip(reason)
}
