package fleet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hostctl/hostctl/errdefs"
)

// MaxWindowMinutes is the longest window: one week.
const MaxWindowMinutes = 7 * 24 * 60

// Window is one maintenance window: it opens at Start (minutes after
// midnight, wall clock of the schedule's time zone) on each of Days and
// stays open for Length minutes of real time, possibly past midnight and
// past the end of the week (Sun 23:00 for 120 minutes closes on Monday at
// 01:00).
//
// A start time that the clock skips on a day (02:30 when summer time
// begins at 02:00) opens the window at the same offset after the jump
// (03:30); a start time that the clock shows twice (when summer time ends)
// opens it the first time.
type Window struct {
	// Days is a bitmask of time.Weekday: bit d set for weekday d.
	Days uint8
	// Start is the opening time in minutes after midnight, 0..1439.
	Start int
	// Length is how long the window stays open, in minutes,
	// 1..MaxWindowMinutes.
	Length int
}

// Schedule is a set of maintenance windows in one time zone, the reboot
// policy of RebootStrategy=periodic.
type Schedule struct {
	// Location is the windows' time zone.
	Location *time.Location
	// Windows are the windows; they may overlap.
	Windows []Window
}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func parseDay(s string) (time.Weekday, bool) {
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// ParseWindow parses one window in hostd.conf's form, the value of a
// [Periodic] Window= line: "DAYS HH:MM MINUTES", where DAYS is a
// comma-separated list of Mon, Tue, Wed, Thu, Fri, Sat, Sun (any case) and
// ranges of them (Mon-Fri; Fri-Mon wraps over the week end), HH:MM the
// opening time (24-hour clock) and MINUTES the length. Example:
// "Mon,Tue 22:30 60".
func ParseWindow(s string) (Window, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Window{}, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"maintenance window %q: want DAYS HH:MM MINUTES, as in \"Mon,Tue 22:30 60\"", s)
	}
	var w Window
	for _, part := range strings.Split(f[0], ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok1 := parseDay(from)
		b, ok2 := a, true
		if isRange {
			b, ok2 = parseDay(to)
		}
		if !ok1 || !ok2 {
			return Window{}, errdefs.Errorf(errdefs.ErrInvalidArgument,
				"maintenance window %q: unknown day %q; days are Mon, Tue, Wed, Thu, Fri, Sat, Sun or ranges such as Mon-Fri", s, part)
		}
		for d := a; ; d = (d + 1) % 7 {
			w.Days |= 1 << d
			if d == b {
				break
			}
		}
	}
	hh, mm, ok := strings.Cut(f[1], ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 ||
		h < 0 || h > 23 || m < 0 || m > 59 || hh[0] == '+' || hh[0] == '-' || mm[0] == '+' || mm[0] == '-' {
		return Window{}, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"maintenance window %q: start time %q is not HH:MM (00:00 to 23:59)", s, f[1])
	}
	w.Start = h*60 + m
	n, err := strconv.Atoi(f[2])
	if err != nil || n < 1 || n > MaxWindowMinutes || f[2][0] == '+' {
		return Window{}, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"maintenance window %q: length %q is not a number of minutes from 1 to %d", s, f[2], MaxWindowMinutes)
	}
	w.Length = n
	return w, nil
}

// String formats w in the form ParseWindow reads, days in the order Mon to
// Sun.
func (w Window) String() string {
	var days []string
	for i := 1; i <= 7; i++ {
		if w.Days&(1<<(i%7)) != 0 {
			days = append(days, dayNames[i%7])
		}
	}
	return fmt.Sprintf("%s %02d:%02d %d", strings.Join(days, ","), w.Start/60, w.Start%60, w.Length)
}

// ParseSchedule makes the schedule of RebootStrategy=periodic from the
// values of hostd.conf's [Periodic] Window= lines (one window each; at least
// one) and of its TimeZone= (an IANA zone name such as Europe/Berlin;
// "" or UTC for UTC; "localtime" for the host's zone).
func ParseSchedule(windows []string, timeZone string) (*Schedule, error) {
	loc := time.UTC
	if timeZone != "" && timeZone != "UTC" {
		var err error
		if loc, err = time.LoadLocation(timeZone); err != nil {
			if timeZone == "localtime" {
				loc = time.Local
			} else {
				return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
					"TimeZone=%s: %w; name a zone of the tz database (such as Europe/Berlin, installed by the tzdata package) or UTC", timeZone, err)
			}
		}
	}
	if len(windows) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"RebootStrategy=periodic needs at least one Window= line under [Periodic], such as Window=Mon,Tue 22:30 60")
	}
	s := &Schedule{Location: loc}
	for _, v := range windows {
		w, err := ParseWindow(v)
		if err != nil {
			return nil, fmt.Errorf("Window=%s: %w", v, err)
		}
		s.Windows = append(s.Windows, w)
	}
	return s, nil
}

// wallTime returns the instant the clock of loc shows hour:min on the given
// date, resolved as Window's doc says for skipped and repeated times.
func wallTime(year int, month time.Month, day, minutes int, loc *time.Location) time.Time {
	u := time.Date(year, month, day, minutes/60, minutes%60, 0, 0, time.UTC)
	// The zone's offsets around that day: before and after any transition.
	_, before := u.Add(-26 * time.Hour).In(loc).Zone()
	_, after := u.Add(26 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		t := u.Add(-time.Duration(off) * time.Second)
		l := t.In(loc)
		if l.Year() == year && l.Month() == month && l.Day() == day && l.Hour()*60+l.Minute() == minutes {
			if best.IsZero() || t.Before(best) {
				best = t
			}
		}
	}
	if best.IsZero() {
		// Skipped by the clock: the offset in force before the jump puts
		// it as far after the jump as it was after the jump's start.
		best = u.Add(-time.Duration(before) * time.Second)
	}
	return best
}

// span is one opening of a window.
type span struct{ start, end time.Time }

// spans lists the openings of s's windows on the local dates from `from`
// days before t's date to `to` days after it, sorted by start.
func (s *Schedule) spans(t time.Time, from, to int) []span {
	if s == nil || len(s.Windows) == 0 {
		return nil
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	l := t.In(loc)
	var out []span
	for d := -from; d <= to; d++ {
		date := time.Date(l.Year(), l.Month(), l.Day()+d, 12, 0, 0, 0, loc)
		for _, w := range s.Windows {
			if w.Days&(1<<date.Weekday()) == 0 {
				continue
			}
			start := wallTime(date.Year(), date.Month(), date.Day(), w.Start, loc)
			out = append(out, span{start, start.Add(time.Duration(w.Length) * time.Minute)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// Contains tells whether t is inside one of s's windows (a window includes
// its start and excludes its end).
func (s *Schedule) Contains(t time.Time) bool {
	for _, sp := range s.spans(t, 8, 0) {
		if !t.Before(sp.start) && t.Before(sp.end) {
			return true
		}
	}
	return false
}

// Next returns the window that t is in (start at or before t), else the
// next one to open after t. Windows that overlap or touch count as one
// window from the first start to the last end (bounded at about two weeks
// after t). With no windows, start and end are zero.
func (s *Schedule) Next(t time.Time) (start, end time.Time) {
	for _, sp := range s.spans(t, 8, 8) {
		if !sp.end.After(t) {
			continue
		}
		if start.IsZero() {
			start, end = sp.start, sp.end
			continue
		}
		if sp.start.After(end) {
			break
		}
		if sp.end.After(end) {
			end = sp.end
		}
	}
	return start, end
}

// String formats s as hostd.conf's lines would give it: its windows
// separated by "; " and the time zone.
func (s *Schedule) String() string {
	if s == nil {
		return ""
	}
	var ws []string
	for _, w := range s.Windows {
		ws = append(ws, w.String())
	}
	loc := "UTC"
	if s.Location != nil {
		loc = s.Location.String()
	}
	return strings.Join(ws, "; ") + " (" + loc + ")"
}
