package main

import (
	"os"
	"strings"
	"testing"
)

const sampleStatus = `Name:	hostd
Umask:	0022
State:	S (sleeping)
VmPeak:	 1745244 kB
VmHWM:	   36612 kB
VmRSS:	   36140 kB
RssAnon:	    9100 kB
RssFile:	   27040 kB
RssShmem:	       0 kB
Threads:	7
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memory
		wantErr string
	}{
		{"hostd", sampleStatus, memory{RSS: 36140, HWM: 36612, Anon: 9100, File: 27040}, ""},
		{"no RssAnon (old kernels)", "VmHWM:\t10 kB\nVmRSS:\t9 kB\n", memory{RSS: 9, HWM: 10}, ""},
		{"kernel thread", "Name:\tkthreadd\nState:\tS\n", memory{}, "no VmRSS/VmHWM"},
		{"bad unit", "VmHWM:\t10 MB\nVmRSS:\t9 kB\n", memory{}, `field VmHWM: value "10 MB"`},
		{"bad number", "VmHWM:\tx kB\nVmRSS:\t9 kB\n", memory{}, `field VmHWM: value "x kB"`},
		{"empty", "", memory{}, "no VmRSS/VmHWM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatus = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{"plain", "1234 (hostd) S 1 1234 1234 0 -1 4194560 1187 0 0 0 25 13 0 0 20 0 7 0 100 1745244160 9035 18446744073709551615", 38, ""},
		{"comm with spaces and parentheses", "99 (a) b (c)) R 1 99 99 0 -1 0 0 0 0 0 7 5 0 0 20 0 1 0 5 0 0", 12, ""},
		{"truncated", "1 (x) S 1 1 1", 0, "fields after comm"},
		{"no comm", "1 x S", 0, "no \"(comm)\""},
		{"bad utime", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 5 0", 0, "utime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatCPU = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

const sampleSmaps = `00400000-00c00000 r-xp 00000000 fe:00 123 /usr/libexec/hostd
Size:               8192 kB
Rss:                6000 kB
Pss:                6000 kB
00c00000-01400000 r--p 00800000 fe:00 123 /usr/libexec/hostd
Rss:                3000 kB
01400000-01500000 rw-p 00000000 00:00 0 
Rss:                 900 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 456 /usr/lib/x86_64-linux-gnu/libostree-1.so.1.0.0
Rss:                 564 kB
7f0000200000-7f0000300000 r-xp 00000000 fe:00 789 /opt/my dir/hostd
Rss:                  40 kB
`

func TestParseSmapsRSS(t *testing.T) {
	tests := []struct {
		path string
		want uint64
	}{
		{"/usr/libexec/hostd", 9000},
		{"/usr/lib/x86_64-linux-gnu/libostree-1.so.1.0.0", 564},
		{"/opt/my dir/hostd", 40},
		{"/nothing", 0},
	}
	for _, tt := range tests {
		got, err := parseSmapsRSS([]byte(sampleSmaps), tt.path)
		if err != nil || got != tt.want {
			t.Errorf("parseSmapsRSS(%q) = %d, %v; want %d", tt.path, got, err, tt.want)
		}
	}
	if _, err := parseSmapsRSS([]byte("00400000-00c00000 r-xp 00000000 fe:00 123 /x\nRss: lots\n"), "/x"); err == nil {
		t.Error("a malformed Rss line was accepted")
	}
}

// TestReadOwnMemory reads this test process's own /proc files: the parsers
// accept what the running kernel writes.
func TestReadOwnMemory(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS == 0 || m.HWM < m.RSS || m.Exe == 0 || m.Exe > m.File {
		t.Errorf("own memory %+v: want RSS > 0, HWM >= RSS, 0 < Exe <= File", m)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(sampleStatus))
	f.Add([]byte("VmHWM:\t10 kB\nVmRSS:\t9 kB\n"))
	f.Add([]byte("VmRSS:"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseStatus(data)
		if err != nil && m != (memory{}) {
			t.Fatalf("error %v with a non-zero result %+v", err, m)
		}
	})
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1234 (hostd) S 1 1234 1234 0 -1 4194560 1187 0 0 0 25 13 0 0 20 0 7 0 100"))
	f.Add([]byte("99 (a) b (c)) R 1 99 99 0 -1 0 0 0 0 0 7 5 0 0"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseStatCPU(data) // must not panic
	})
}

func FuzzParseSmapsRSS(f *testing.F) {
	f.Add([]byte(sampleSmaps), "/usr/libexec/hostd")
	f.Add([]byte("a-b c d e f /x\nRss: 1 kB\n"), "/x")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		parseSmapsRSS(data, path) // must not panic
	})
}
