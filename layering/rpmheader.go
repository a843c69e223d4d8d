package layering

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cavaliergopher/rpm"
)

const (
	leadSize        = 96
	maxHeaderStore  = 32 << 20 // rpm's own limit on a header's data store
	maxHeaderIndex  = 1 << 16  // index entries in one header
	headerIntroSize = 16
)

// ReadPackage reads the lead, signature header and header of an RPM from r,
// leaving r at the start of the payload. Unlike rpm.Read it first checks
// every index entry against the header's data store, so a hostile header
// cannot make the reader allocate beyond the store's size.
func ReadPackage(r io.Reader) (*rpm.Package, error) {
	var raw bytes.Buffer
	if _, err := io.CopyN(&raw, r, leadSize); err != nil {
		return nil, fmt.Errorf("read rpm lead: %w", noEOF(err))
	}
	if !bytes.HasPrefix(raw.Bytes(), []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, errors.New("read rpm lead: not an RPM file")
	}
	if err := readCheckedHeader(r, &raw, true); err != nil {
		return nil, fmt.Errorf("read rpm signature header: %w", err)
	}
	if err := readCheckedHeader(r, &raw, false); err != nil {
		return nil, fmt.Errorf("read rpm header: %w", err)
	}
	pkg, err := rpm.Read(bytes.NewReader(raw.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("read rpm header: %w", err)
	}
	return pkg, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// tagTypeWidth is the size of one value of a fixed-size tag type; 0 for
// strings and -1 for types rpm does not define.
func tagTypeWidth(t uint32) int64 {
	switch t {
	case 0:
		return 0 // NULL
	case 1, 2, 7: // CHAR, INT8, BIN
		return 1
	case 3:
		return 2
	case 4:
		return 4
	case 5:
		return 8
	case 6, 8, 9: // STRING, STRING_ARRAY, I18NSTRING: at least one byte each
		return 1
	}
	return -1
}

// readCheckedHeader copies one header structure from r to raw after checking it.
func readCheckedHeader(r io.Reader, raw *bytes.Buffer, pad bool) error {
	var intro [headerIntroSize]byte
	if _, err := io.ReadFull(r, intro[:]); err != nil {
		return noEOF(err)
	}
	if !bytes.Equal(intro[:3], []byte{0x8e, 0xad, 0xe8}) {
		return errors.New("bad header magic")
	}
	count := int64(binary.BigEndian.Uint32(intro[8:12]))
	size := int64(binary.BigEndian.Uint32(intro[12:16]))
	if count > maxHeaderIndex || size > maxHeaderStore {
		return fmt.Errorf("header too large (%d entries, %d bytes)", count, size)
	}
	index := make([]byte, count*16)
	if _, err := io.ReadFull(r, index); err != nil {
		return noEOF(err)
	}
	stored := size
	if pad {
		stored += (8 - size%8) % 8
	}
	store := make([]byte, stored)
	if _, err := io.ReadFull(r, store); err != nil {
		return noEOF(err)
	}
	store = store[:size]
	for i := int64(0); i < count; i++ {
		e := index[i*16 : i*16+16]
		typ := binary.BigEndian.Uint32(e[4:8])
		off := int64(binary.BigEndian.Uint32(e[8:12]))
		n := int64(binary.BigEndian.Uint32(e[12:16]))
		w := tagTypeWidth(typ)
		if w < 0 {
			return fmt.Errorf("index entry %d: unknown type %d", i, typ)
		}
		if n < 1 || off >= size || off+n*w > size {
			return fmt.Errorf("index entry %d: %d values at offset %d overflow the %d-byte store", i, n, off, size)
		}
		if typ == 6 || typ == 8 || typ == 9 {
			// Every string must end with a NUL inside the store.
			at := off
			for k := int64(0); k < n; k++ {
				end := bytes.IndexByte(store[at:], 0)
				if end < 0 {
					return fmt.Errorf("index entry %d: string %d is not terminated inside the store", i, k)
				}
				at += int64(end) + 1
				if at >= size && k+1 < n {
					return fmt.Errorf("index entry %d: %d strings overflow the store", i, n)
				}
			}
		}
	}
	raw.Write(intro[:])
	raw.Write(index)
	raw.Write(store)
	raw.Write(make([]byte, stored-size))
	return nil
}
