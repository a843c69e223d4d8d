package deploy

// #include "helpers.h"
import "C"

import (
	"runtime/cgo"
)

// PullProgress is a snapshot of a pull in flight.
type PullProgress struct {
	// Status is libostree's status line, when it sets one.
	Status string
	// Fetched and Requested count objects; Requested grows as metadata is scanned.
	Fetched, Requested uint
	// OutstandingFetches is the number of requests in flight.
	OutstandingFetches uint
	// ScannedMetadata counts metadata objects walked so far.
	ScannedMetadata uint
	// Bytes is the number of bytes transferred so far.
	Bytes uint64
}

// progressFunc receives progress during a pull.
type progressFunc func(PullProgress)

//export hcGoProgress
func hcGoProgress(handle C.uintptr_t, p *C.OstreeAsyncProgress) {
	fn, ok := cgo.Handle(handle).Value().(progressFunc)
	if !ok || fn == nil {
		return
	}
	get := func(k string) uint {
		ck := C.CString(k)
		defer cfree(ck)
		return uint(C.ostree_async_progress_get_uint(p, ck))
	}
	ck := C.CString("bytes-transferred")
	bytes := uint64(C.ostree_async_progress_get_uint64(p, ck))
	cfree(ck)
	fn(PullProgress{
		Status:             gstring(C.ostree_async_progress_get_status(p)),
		Fetched:            get("fetched"),
		Requested:          get("requested"),
		OutstandingFetches: get("outstanding-fetches"),
		ScannedMetadata:    get("scanned-metadata"),
		Bytes:              bytes,
	})
}
