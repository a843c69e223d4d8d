package daemon

import (
	"slices"
	"strings"
	"testing"
)

func TestRequestedAfter(t *testing.T) {
	for _, tc := range []struct {
		name             string
		old, add, remove []string
		idempotent       bool
		want             []string
		err              string
	}{
		{name: "add", old: nil, add: []string{"a", "b"}, want: []string{"a", "b"}},
		{name: "add keeps order", old: []string{"b"}, add: []string{"a"}, want: []string{"b", "a"}},
		{name: "remove", old: []string{"a", "b"}, remove: []string{"a"}, want: []string{"b"}},
		{name: "remove last", old: []string{"a"}, remove: []string{"a"}, want: []string{}},
		{name: "add again", old: []string{"a"}, add: []string{"a"}, err: "already requested"},
		{name: "add again idempotent", old: []string{"a"}, add: []string{"a"}, idempotent: true, want: []string{"a"}},
		{name: "remove missing", old: []string{"a"}, remove: []string{"b"}, err: "not layered"},
		{name: "remove missing idempotent", old: []string{"a"}, remove: []string{"b"}, idempotent: true, want: []string{"a"}},
		{name: "swap", old: []string{"a"}, add: []string{"b"}, remove: []string{"a"}, want: []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := requestedAfter(tc.old, tc.add, tc.remove, tc.idempotent)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
