package layering

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// rpm's payload is a cpio archive in one of two forms (rpm lib/cpio.c):
//
//   - "newc" (magic 070701, or 070702 whose checksum rpm ignores): each entry
//     is a 110-byte header of 13 eight-digit hex fields, the NUL-terminated
//     name, padding to 4 bytes, the content and padding to 4 bytes. The name
//     identifies the file in the header's file list; rpm itself takes the
//     file's metadata from the header, not from the cpio fields.
//   - "stripped" (magic 07070X), written when the header carries
//     RPMTAG_LONGFILESIZES (always by rpm 6, by rpm 4.12+ when a file is
//     4 GiB or more): each entry is the magic, an eight-digit hex index into
//     the header's file arrays and padding to 4 bytes. Nothing else: the
//     content's length is what the header says (RPMTAG_LONGFILESIZES; zero
//     for directories and for all but the last member of a hardlink set;
//     the target's length for symlinks) and the reader must be told it.
//
// Offsets and padding count from the start of the payload. Both forms end
// with a newc entry named TRAILER!!!; a stripped entry with index ffffffff
// ends the archive too.
const (
	cpioNewcMagic     = "070701"
	cpioCRCMagic      = "070702"
	cpioStrippedMagic = "07070X"
	cpioTrailer       = "TRAILER!!!"
	cpioNewcFields    = 13 // inode mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize checksum
	cpioNameMax       = 4096
	cpioStrippedEnd   = 0xffffffff
)

// cpioEntry is one entry of an rpm payload.
type cpioEntry struct {
	// Stripped is true for a 07070X entry: Index is the file's index in the
	// header and nothing else is known.
	Stripped bool
	// Index is the file's index in the header's file arrays (stripped entries).
	Index int
	// Name, Mode and Size are the newc entry's path, mode and content length.
	Name string
	Mode uint32
	Size int64
}

// cpioReader reads rpm payload entries of both forms (see above). After
// Next, Read returns the entry's content: for a newc entry the size its
// header gives, for a stripped entry the size passed to SetSize (zero until
// then). Next skips whatever content of the previous entry was not read.
type cpioReader struct {
	r      *bufio.Reader
	off    int64 // bytes consumed from the start of the payload
	remain int64 // content bytes of the current entry not read yet
	done   bool
}

func newCPIOReader(r io.Reader) *cpioReader {
	return &cpioReader{r: bufio.NewReaderSize(r, 1<<16)}
}

var errCPIOTruncated = errors.New("cpio: payload truncated")

func (c *cpioReader) discard(n int64) error {
	for n > 0 {
		k := n
		if k > 1<<30 {
			k = 1 << 30
		}
		d, err := c.r.Discard(int(k))
		c.off += int64(d)
		n -= int64(d)
		if err != nil {
			return noTruncEOF(err)
		}
	}
	return nil
}

func noTruncEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errCPIOTruncated
	}
	return err
}

func (c *cpioReader) pad() error {
	return c.discard((4 - c.off%4) % 4)
}

func (c *cpioReader) readFull(b []byte) error {
	n, err := io.ReadFull(c.r, b)
	c.off += int64(n)
	if err != nil {
		return noTruncEOF(err)
	}
	return nil
}

// parseHex8 parses an eight-digit hex field (digits only: no sign, no
// spaces, unlike strtoul).
func parseHex8(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, ch := range b {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// Next returns the next entry, or io.EOF after the trailer.
func (c *cpioReader) Next() (*cpioEntry, error) {
	if c.done {
		return nil, io.EOF
	}
	if err := c.discard(c.remain); err != nil {
		return nil, err
	}
	c.remain = 0
	if err := c.pad(); err != nil {
		return nil, err
	}
	at := c.off
	var magic [6]byte
	if err := c.readFull(magic[:]); err != nil {
		return nil, err
	}
	switch string(magic[:]) {
	case cpioStrippedMagic:
		var f [8]byte
		if err := c.readFull(f[:]); err != nil {
			return nil, err
		}
		fx, ok := parseHex8(f[:])
		if !ok {
			return nil, fmt.Errorf("cpio: invalid stripped entry header at offset %d (file index %q)", at, f[:])
		}
		if err := c.pad(); err != nil {
			return nil, err
		}
		if fx == cpioStrippedEnd {
			c.done = true
			return nil, io.EOF
		}
		return &cpioEntry{Stripped: true, Index: int(fx)}, nil
	case cpioNewcMagic, cpioCRCMagic:
	default:
		return nil, fmt.Errorf("cpio: invalid entry header at offset %d (magic %q; neither newc 070701 nor stripped 07070X)", at, magic[:])
	}
	var raw [cpioNewcFields * 8]byte
	if err := c.readFull(raw[:]); err != nil {
		return nil, err
	}
	var v [cpioNewcFields]uint32
	for i := range v {
		x, ok := parseHex8(raw[i*8 : i*8+8])
		if !ok {
			return nil, fmt.Errorf("cpio: invalid newc entry header at offset %d (field %d is %q)", at, i, raw[i*8:i*8+8])
		}
		v[i] = x
	}
	nameSize := v[11]
	if nameSize == 0 || nameSize > cpioNameMax {
		return nil, fmt.Errorf("cpio: invalid newc entry header at offset %d (name size %d)", at, nameSize)
	}
	name := make([]byte, nameSize)
	if err := c.readFull(name); err != nil {
		return nil, err
	}
	if name[nameSize-1] != 0 || bytes.IndexByte(name[:nameSize-1], 0) >= 0 {
		return nil, fmt.Errorf("cpio: invalid newc entry name at offset %d (not one NUL-terminated string)", at)
	}
	if err := c.pad(); err != nil {
		return nil, err
	}
	e := &cpioEntry{Index: -1, Name: string(name[:nameSize-1]), Mode: v[1], Size: int64(v[6])}
	if e.Name == cpioTrailer {
		c.done = true
		return nil, io.EOF
	}
	c.remain = e.Size
	return e, nil
}

// SetSize sets the content length of the current stripped entry, which
// only the header knows.
func (c *cpioReader) SetSize(n int64) {
	c.remain = n
}

// Read reads the current entry's content.
func (c *cpioReader) Read(p []byte) (int, error) {
	if c.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.off += int64(n)
	c.remain -= int64(n)
	if err == io.EOF && c.remain > 0 {
		err = errCPIOTruncated
	}
	return n, err
}
