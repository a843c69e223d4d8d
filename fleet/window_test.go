package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
)

func TestParseWindow(t *testing.T) {
	cases := []struct {
		in   string
		want string // String() of the result; "" for an error
	}{
		{"Mon,Tue 22:30 60", "Mon,Tue 22:30 60"},
		{"  sun   0:05   1 ", "Sun 00:05 1"},
		{"Mon-Fri 02:00 90", "Mon,Tue,Wed,Thu,Fri 02:00 90"},
		{"Fri-Mon 23:59 10080", "Mon,Fri,Sat,Sun 23:59 10080"},
		{"Sun,Sat,SUN 12:00 30", "Sat,Sun 12:00 30"},
		{"Mon 22:30", ""},
		{"Mon 22:30 60 extra", ""},
		{"Monday 22:30 60", ""},
		{"Mon,,Tue 22:30 60", ""},
		{"Mon 24:00 60", ""},
		{"Mon 22:60 60", ""},
		{"Mon 22:3 60", ""},
		{"Mon 22.30 60", ""},
		{"Mon -1:30 60", ""},
		{"Mon 22:30 0", ""},
		{"Mon 22:30 -5", ""},
		{"Mon 22:30 +5", ""},
		{"Mon 22:30 10081", ""},
		{"Mon 22:30 1h", ""},
		{"", ""},
	}
	for _, tc := range cases {
		w, err := ParseWindow(tc.in)
		if tc.want == "" {
			if err == nil || errdefs.Kind(err) != errdefs.ErrInvalidArgument {
				t.Errorf("ParseWindow(%q) = %v, %v; want an invalid argument error", tc.in, w, err)
			}
			continue
		}
		if err != nil || w.String() != tc.want {
			t.Errorf("ParseWindow(%q) = %q, %v; want %q", tc.in, w, err, tc.want)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule([]string{"Mon 01:00 30", "Sat,Sun 22:30 60"}, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "Mon 01:00 30; Sat,Sun 22:30 60 (Europe/Berlin)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s, err := ParseSchedule([]string{"Mon 01:00 30"}, ""); err != nil || s.Location != time.UTC {
		t.Errorf("no time zone: %v, %v; want UTC", s, err)
	}
	for _, bad := range []struct {
		windows []string
		tz, msg string
	}{
		{nil, "UTC", "at least one Window= line"},
		{[]string{"Mon 01:00 30"}, "Mars/Olympus_Mons", "TimeZone=Mars/Olympus_Mons"},
		{[]string{"Mon 01:00 30", "Someday 01:00 30"}, "UTC", "Window=Someday 01:00 30"},
	} {
		_, err := ParseSchedule(bad.windows, bad.tz)
		if err == nil || errdefs.Kind(err) != errdefs.ErrInvalidArgument || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("ParseSchedule(%q, %q): %v; want an invalid argument error naming %q", bad.windows, bad.tz, err, bad.msg)
		}
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s: %v (install tzdata)", name, err)
	}
	return loc
}

func TestScheduleContainsNext(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	ny := mustLoc(t, "America/New_York")
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	utc := func(s string) time.Time { return at(time.UTC, s) }
	cases := []struct {
		name      string
		windows   []string
		loc       *time.Location
		t         time.Time
		contains  bool
		nextStart time.Time
		nextEnd   time.Time
	}{
		// 2026-12-07 is a Monday.
		{"before the window", []string{"Mon,Tue 22:30 60"}, time.UTC, utc("2026-12-07 22:00"), false,
			utc("2026-12-07 22:30"), utc("2026-12-07 23:30")},
		{"at its start", []string{"Mon,Tue 22:30 60"}, time.UTC, utc("2026-12-07 22:30"), true,
			utc("2026-12-07 22:30"), utc("2026-12-07 23:30")},
		{"at its end: the next day's", []string{"Mon,Tue 22:30 60"}, time.UTC, utc("2026-12-07 23:30"), false,
			utc("2026-12-08 22:30"), utc("2026-12-08 23:30")},
		{"after Tuesday's: next Monday", []string{"Mon,Tue 22:30 60"}, time.UTC, utc("2026-12-09 00:00"), false,
			utc("2026-12-14 22:30"), utc("2026-12-14 23:30")},
		{"crossing midnight, after it", []string{"Mon 23:00 120"}, time.UTC, utc("2026-12-08 00:30"), true,
			utc("2026-12-07 23:00"), utc("2026-12-08 01:00")},
		{"crossing the week end", []string{"Sun 23:00 120"}, time.UTC, utc("2026-12-07 00:59"), true,
			utc("2026-12-06 23:00"), utc("2026-12-07 01:00")},
		{"crossing the week end, after it", []string{"Sun 23:00 120"}, time.UTC, utc("2026-12-07 01:00"), false,
			utc("2026-12-13 23:00"), utc("2026-12-14 01:00")},
		{"a week long", []string{"Wed 00:00 10080"}, time.UTC, utc("2026-12-08 23:59"), true,
			utc("2026-12-02 00:00"), utc("2026-12-23 00:00")}, // back to back: one window, up to Next's bound
		{"overlapping windows merge", []string{"Mon 22:00 60", "Mon 22:30 60", "Mon 23:30 30"}, time.UTC, utc("2026-12-07 21:00"), false,
			utc("2026-12-07 22:00"), utc("2026-12-08 00:00")},
		{"in a named zone", []string{"Mon 22:30 60"}, berlin, utc("2026-12-07 21:45"), true,
			at(berlin, "2026-12-07 22:30"), at(berlin, "2026-12-07 23:30")},
		{"in a named zone, UTC time in the window but not the local one", []string{"Mon 22:30 60"}, berlin, utc("2026-12-07 22:45"), false,
			at(berlin, "2026-12-14 22:30"), at(berlin, "2026-12-14 23:30")},
		// Summer time begins in Berlin on Sunday 2026-03-29 at 02:00 (clock to 03:00).
		{"start time skipped by the clock", []string{"Sun 02:30 60"}, berlin, utc("2026-03-29 00:00"), false,
			utc("2026-03-29 01:30"), utc("2026-03-29 02:30")}, // 03:30 to 04:30 CEST
		{"window over the spring jump lasts its real minutes", []string{"Sun 01:30 60"}, berlin, utc("2026-03-29 01:15"), true,
			utc("2026-03-29 00:30"), utc("2026-03-29 01:30")}, // 01:30 CET to 03:30 CEST
		{"the day after the spring jump", []string{"Mon 02:30 60"}, berlin, utc("2026-03-29 12:00"), false,
			utc("2026-03-30 00:30"), utc("2026-03-30 01:30")},
		// Summer time ends in Berlin on Sunday 2026-10-25 at 03:00 (clock back to 02:00).
		{"start time shown twice: the first", []string{"Sun 02:30 60"}, berlin, utc("2026-10-24 12:00"), false,
			utc("2026-10-25 00:30"), utc("2026-10-25 01:30")}, // 02:30 CEST to 02:30 CET
		{"inside it, in the repeated hour", []string{"Sun 02:30 60"}, berlin, utc("2026-10-25 01:15"), true,
			utc("2026-10-25 00:30"), utc("2026-10-25 01:30")},
		{"after it, the second 02:30 is not a window", []string{"Sun 02:30 60"}, berlin, utc("2026-10-25 01:30"), false,
			utc("2026-11-01 01:30"), utc("2026-11-01 02:30")},
		// New York: summer time begins 2026-03-08 at 02:00.
		{"New York, skipped start", []string{"Sun 02:15 30"}, ny, utc("2026-03-08 06:00"), false,
			utc("2026-03-08 07:15"), utc("2026-03-08 07:45")}, // 03:15 EDT
		{"New York, after the jump the offset is -4", []string{"Sun 22:00 60"}, ny, utc("2026-03-09 02:30"), true,
			utc("2026-03-09 02:00"), utc("2026-03-09 03:00")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.windows, tc.loc.String())
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Contains(tc.t); got != tc.contains {
				t.Errorf("Contains(%v) = %v, want %v", tc.t, got, tc.contains)
			}
			start, end := s.Next(tc.t)
			if !start.Equal(tc.nextStart) || !end.Equal(tc.nextEnd) {
				t.Errorf("Next(%v) = %v, %v; want %v, %v", tc.t.In(tc.loc), start.In(tc.loc), end.In(tc.loc), tc.nextStart.In(tc.loc), tc.nextEnd.In(tc.loc))
			}
			// Next agrees with Contains: in a window iff start <= t.
			if in := !start.After(tc.t); in != tc.contains {
				t.Errorf("Next(%v) starts %v: in a window %v, Contains says %v", tc.t, start, in, tc.contains)
			}
		})
	}
	var empty *Schedule
	if s, e := empty.Next(time.Now()); !s.IsZero() || !e.IsZero() || empty.Contains(time.Now()) {
		t.Errorf("empty schedule: Next = %v, %v", s, e)
	}
}

// FuzzParseWindow: the parser never panics; what it accepts formats back to
// a form it parses to the same window, and a schedule of it contains its
// own next opening.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"Mon,Tue 22:30 60", "Fri-Mon 23:59 10080", "sun 0:05 1", "Mon 24:00 60", "Mon-- 1:1 1", ""} {
		f.Add(s)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.UTC
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			if errdefs.Kind(err) != errdefs.ErrInvalidArgument {
				t.Fatalf("ParseWindow(%q): %v is not an invalid argument error", s, err)
			}
			return
		}
		if w.Days == 0 || w.Days >= 1<<7 || w.Start < 0 || w.Start >= 24*60 || w.Length < 1 || w.Length > MaxWindowMinutes {
			t.Fatalf("ParseWindow(%q) = %+v: out of range", s, w)
		}
		again, err := ParseWindow(w.String())
		if err != nil || again != w {
			t.Fatalf("ParseWindow(%q) = %+v, String %q parses to %+v, %v", s, w, w.String(), again, err)
		}
		sched := &Schedule{Location: berlin, Windows: []Window{w}}
		now := time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)
		start, end := sched.Next(now)
		if start.IsZero() || !end.After(start) || !end.After(now) || !sched.Contains(start) || !sched.Contains(end.Add(-time.Second)) {
			t.Fatalf("window %q: Next(%v) = %v, %v", w, now, start, end)
		}
	})
}
