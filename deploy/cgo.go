package deploy

// #cgo pkg-config: ostree-1 gio-2.0
// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// gerror turns a GError into a Go error and frees it. It returns nil for nil.
// A cancelled operation comes back as context.Canceled, a missing object or ref
// as ErrNotFound, so callers can test for them with errors.Is.
func gerror(err *C.GError) error {
	if err == nil {
		return errors.New("libostree failed without saying why")
	}
	defer C.g_error_free(err)
	msg := C.GoString(err.message)
	switch {
	case C.hc_io_error_is(err, C.G_IO_ERROR_CANCELLED) != 0:
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	case C.hc_io_error_is(err, C.G_IO_ERROR_NOT_FOUND) != 0:
		return fmt.Errorf("%s: %w", msg, ErrNotFound)
	case C.hc_io_error_is(err, C.G_IO_ERROR_NO_SPACE) != 0 || strings.Contains(msg, "No space left on device") ||
		strings.Contains(msg, "min-free-space-") && strings.Contains(msg, "would be exceeded"):
		// libostree passes ENOSPC on as G_IO_ERROR_NO_SPACE, or inside a
		// message of another domain (glnx_throw_errno_prefix); its own
		// reserve (the repo's min-free-space-percent or -size) is a plain
		// G_IO_ERROR_FAILED naming the option.
		return fmt.Errorf("%s: %w", msg, syscall.ENOSPC)
	}
	return errors.New(msg)
}

// cstr allocates a C string; the caller frees it with C.free. An empty string gives NULL when nullable.
func cstr(s string, nullable bool) *C.char {
	if nullable && s == "" {
		return nil
	}
	return C.CString(s)
}

func cfree(p *C.char) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

// gstring copies a g_malloc'ed string into Go and frees it.
func gstring(p *C.char) string {
	if p == nil {
		return ""
	}
	defer C.g_free(C.gpointer(p))
	return C.GoString(p)
}

// cancellable ties a GCancellable to ctx for the duration of one call.
type cancellable struct {
	c    *C.GCancellable
	stop func() bool
	// started is set when the AfterFunc callback begins, fired is closed
	// when it has finished cancelling.
	started atomic.Bool
	fired   chan struct{}
}

func newCancellable(ctx context.Context) *cancellable {
	cc := &cancellable{c: C.g_cancellable_new(), fired: make(chan struct{})}
	cc.stop = context.AfterFunc(ctx, func() {
		cc.started.Store(true)
		defer close(cc.fired)
		C.g_cancellable_cancel(cc.c)
	})
	return cc
}

// free releases the GCancellable. context.AfterFunc's stop does not wait for
// a callback that already started, so when stop reports it too late, free
// waits for that callback to return before the unref: g_cancellable_cancel
// never runs on a freed object.
func (c *cancellable) free() {
	if !c.stop() {
		<-c.fired
	}
	C.g_object_unref(C.gpointer(c.c))
}

// cstrv builds a NULL-terminated char** from ss; free it with freeStrv.
func cstrv(ss []string) **C.char {
	if ss == nil {
		return nil
	}
	p := (**C.char)(C.malloc(C.size_t(len(ss)+1) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	arr := unsafe.Slice(p, len(ss)+1)
	for i, s := range ss {
		arr[i] = C.CString(s)
	}
	arr[len(ss)] = nil
	return p
}

func freeStrv(p **C.char, n int) {
	if p == nil {
		return
	}
	arr := unsafe.Slice(p, n+1)
	for i := 0; i < n; i++ {
		C.free(unsafe.Pointer(arr[i]))
	}
	C.free(unsafe.Pointer(p))
}

// cCommit is CommitOptions as the C commit helpers take them: the parent,
// subject and ref, the metadata as sorted key and value arrays, the
// timestamp (0: now). free releases the C strings.
type cCommit struct {
	parent, subject, ref *C.char
	keys, values         **C.char
	n                    C.int
	ts                   C.guint64
}

func newCCommit(opts CommitOptions) *cCommit {
	keys := make([]string, 0, len(opts.Metadata))
	for k := range opts.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = opts.Metadata[k]
	}
	c := &cCommit{parent: cstr(opts.Parent, true), subject: C.CString(opts.Subject), ref: cstr(opts.Ref, true),
		keys: cstrv(keys), values: cstrv(values), n: C.int(len(keys))}
	if !opts.Timestamp.IsZero() {
		c.ts = C.guint64(opts.Timestamp.Unix())
	}
	return c
}

func (c *cCommit) free() {
	cfree(c.parent)
	cfree(c.subject)
	cfree(c.ref)
	freeStrv(c.keys, int(c.n))
	freeStrv(c.values, int(c.n))
}
