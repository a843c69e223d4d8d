package deploy

import "testing"

// TestRollbackIndex: the deployment Rollback makes the default, as
// rpm-ostree picks it, for booted and offline sysroots.
func TestRollbackIndex(t *testing.T) {
	d := func(osname string, booted bool) Deployment { return Deployment{OSName: osname, Booted: booted} }
	for _, c := range []struct {
		name string
		deps []Deployment
		want int
	}{
		{"none", nil, -1},
		{"one, offline", []Deployment{d("a", false)}, -1},
		{"one, booted", []Deployment{d("a", true)}, -1},
		{"offline: the one after the default", []Deployment{d("a", false), d("a", false), d("a", false)}, 1},
		{"booted default: the one after it", []Deployment{d("a", true), d("a", false)}, 1},
		{"pending above the booted one: the booted one", []Deployment{d("a", false), d("a", true), d("a", false)}, 1},
		{"another OS in between", []Deployment{d("a", true), d("b", false), d("a", false)}, 2},
		{"only another OS after", []Deployment{d("a", false), d("b", false)}, -1},
	} {
		if got := RollbackIndex(c.deps); got != c.want {
			t.Errorf("%s: RollbackIndex = %d, want %d", c.name, got, c.want)
		}
	}
}
