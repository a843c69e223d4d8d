package layer

import (
	"io"
	"sync"
	"sync/atomic"
)

// readAhead decompresses a layer blob on its own goroutine, a few chunks
// ahead of the reader, so decompression (and whatever the blob's reader does:
// the download, the digest) overlaps with the writes of the entries.
type readAhead struct {
	full    chan chunk    // decompressed chunks, in order
	free    chan []byte   // buffers the reader is done with
	stop    chan struct{} // closed when the reader gives up or is done
	once    sync.Once
	aborted atomic.Bool   // the reader gave up: nothing more is read
	done    chan struct{} // closed when the goroutine has returned
	cur     []byte        // what is left of the chunk being read
	buf     []byte        // the buffer cur belongs to
	err     error         // the error that ended the stream
}

type chunk struct {
	b   []byte
	err error
}

const (
	aheadChunks    = 4
	aheadChunkSize = 256 << 10
)

// newReadAhead starts decompressing r (see Decompress). The stream's own
// errors (a damaged gzip, the blob's reader failing) come out of Read.
func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{full: make(chan chunk, aheadChunks), free: make(chan []byte, aheadChunks+1),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := 0; i < aheadChunks+1; i++ {
		ra.free <- make([]byte, aheadChunkSize)
	}
	go ra.run(r)
	return ra
}

func (ra *readAhead) run(src io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	dec, err := Decompress(src)
	if err != nil {
		ra.full <- chunk{err: err}
		return
	}
	defer dec.Close()
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			ra.drain(src)
			return
		}
		n, err := io.ReadFull(dec, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if n > 0 || err != nil {
			select {
			case ra.full <- chunk{b: b[:n], err: err}:
			case <-ra.stop:
				ra.drain(src)
				return
			}
		}
		if err != nil {
			ra.drain(src)
			return
		}
	}
}

// drain reads the rest of the compressed blob when the reader finished
// (the caller checks the digest of all of it), not when it gave up.
func (ra *readAhead) drain(src io.Reader) {
	if ra.aborted.Load() {
		return
	}
	io.Copy(io.Discard, src)
}

// Read reads decompressed bytes.
func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		c, ok := <-ra.full
		if !ok {
			ra.err = io.EOF
			continue
		}
		ra.buf, ra.cur = c.b, c.b
		if c.err != nil {
			ra.err = c.err
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// finish ends a stream read to its (tar) end: the rest of the blob is read
// and discarded so that its digest can be checked, as Apply's caller did.
// It returns once the goroutine has.
func (ra *readAhead) finish() error {
	ra.once.Do(func() { close(ra.stop) })
	<-ra.done
	return nil
}

// abort ends a stream its reader gave up on; it returns once the goroutine
// has (at most one chunk's read later).
func (ra *readAhead) abort() {
	ra.once.Do(func() {
		ra.aborted.Store(true)
		close(ra.stop)
	})
	<-ra.done
}
