package bootloader

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxEntrySize is the largest BLS entry file ParseEntry accepts. Entries
// libostree writes are a few hundred bytes.
const MaxEntrySize = 64 << 10

// Field is a key and value of a BLS entry that Entry has no field for
// (machine-id, sort-key, architecture, x-... and so on).
type Field struct {
	Key   string
	Value string
}

// Entry is one Boot Loader Specification entry file,
// /boot/loader/entries/NAME.conf, as libostree writes it:
//
//	title Fedora Linux 40 (ostree:0)
//	version 2
//	options root=... ostree=/ostree/boot.1/fedora/BOOTCSUM/0
//	linux /ostree/fedora-BOOTCSUM/vmlinuz-6.8.5
//	initrd /ostree/fedora-BOOTCSUM/initramfs-6.8.5.img
type Entry struct {
	// Name is the file name, e.g. "ostree-2-fedora.conf" or, with boot
	// counting, "ostree-2+3-1.conf".
	Name string
	// ID is Name without ".conf" and without the boot counter.
	ID string

	// Counting is true when Name carries a boot counter: NAME+LEFT.conf or
	// NAME+LEFT-DONE.conf (systemd-boot's and libostree's scheme).
	Counting  bool
	TriesLeft uint64
	TriesDone uint64

	Title   string
	Version string
	// Options is the kernel command line. Several options lines are joined
	// with a space, as the Boot Loader Specification says.
	Options string
	// Linux is the kernel path, relative to the root of the boot partition.
	Linux string
	// Initrd lists every initrd line in order; the first is libostree's
	// main initramfs, the others its overlay initrds.
	Initrd     []string
	Devicetree string
	// Extra holds every other key in file order.
	Extra []Field
}

// singular are keys that may appear at most once in an entry: a second
// one would make the bootloader pick one of them silently.
var singular = map[string]bool{
	"title": true, "version": true, "linux": true, "devicetree": true, "efi": true,
	"machine-id": true, "sort-key": true, "architecture": true, "fdtdir": true,
}

// entrySpace separates a key from its value and is trimmed around values.
const entrySpace = " \t\r"

// ParseEntry parses the BLS entry file name (a base name ending in .conf)
// with contents data.
//
// Rules, stricter than libostree's parser where it would silently drop a
// line the bootloader might read differently:
//   - data must be UTF-8 (as libostree requires), without NUL bytes, and at
//     most MaxEntrySize bytes;
//   - blank lines and lines whose first non-blank character is '#' are
//     ignored; leading blanks and a trailing '\r' are ignored;
//   - every other line is KEY VALUE: the key starts with a letter and holds
//     only letters, digits, '-', '_' and '.', and is separated from the
//     value by spaces or tabs; a key without a value is an error;
//   - title, version, linux, devicetree, efi, machine-id, sort-key,
//     architecture and fdtdir may appear once; initrd may repeat; options may
//     repeat and are joined; other keys may repeat and are kept in order;
//   - a linux line is required (efi-only unified kernel entries are not
//     supported).
//
// The boot counter, if any, is parsed from name.
func ParseEntry(name string, data []byte) (Entry, error) {
	e, err := parseEntryName(name)
	if err != nil {
		return Entry{}, err
	}
	if len(data) > MaxEntrySize {
		return Entry{}, fmt.Errorf("parse boot entry %s: %d bytes, more than the %d a boot entry may have", name, len(data), MaxEntrySize)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return Entry{}, fmt.Errorf("parse boot entry %s: NUL byte at offset %d: not a text file", name, i)
	}
	if !utf8.Valid(data) {
		return Entry{}, fmt.Errorf("parse boot entry %s: not valid UTF-8", name)
	}
	seen := map[string]int{}
	var options []string
	for n, line := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		line = strings.Trim(line, entrySpace)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, value = line[:i], strings.Trim(line[i:], entrySpace)
		}
		if !validKey(key) {
			return Entry{}, fmt.Errorf("parse boot entry %s: line %d: %q is not a KEY VALUE line (keys start with a letter and hold letters, digits, '-', '_', '.')", name, lineNo, line)
		}
		if value == "" {
			return Entry{}, fmt.Errorf("parse boot entry %s: line %d: key %q has no value", name, lineNo, key)
		}
		if singular[key] {
			if prev, dup := seen[key]; dup {
				return Entry{}, fmt.Errorf("parse boot entry %s: line %d: second %q line (first on line %d); the bootloader would pick one of them", name, lineNo, key, prev)
			}
			seen[key] = lineNo
		}
		switch key {
		case "title":
			e.Title = value
		case "version":
			e.Version = value
		case "linux":
			e.Linux = value
		case "devicetree":
			e.Devicetree = value
		case "initrd":
			e.Initrd = append(e.Initrd, value)
		case "options":
			options = append(options, value)
		default:
			e.Extra = append(e.Extra, Field{Key: key, Value: value})
		}
	}
	e.Options = strings.Join(options, " ")
	if e.Linux == "" {
		if _, ok := seen["efi"]; ok {
			return Entry{}, fmt.Errorf("parse boot entry %s: has efi but no linux key: unified kernel image entries are not supported", name)
		}
		return Entry{}, fmt.Errorf("parse boot entry %s: no linux key: the entry names no kernel", name)
	}
	return e, nil
}

func validKey(k string) bool {
	if k == "" || !isLetter(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// parseEntryName checks name and fills Name, ID and the boot counter.
func parseEntryName(name string) (Entry, error) {
	stem, ok := strings.CutSuffix(name, ".conf")
	if !ok || stem == "" || strings.ContainsAny(name, "/\x00") {
		return Entry{}, fmt.Errorf("parse boot entry %q: the file name must be a base name ending in .conf", name)
	}
	e := Entry{Name: name, ID: stem}
	plus := strings.LastIndexByte(stem, '+')
	if plus < 0 {
		return e, nil
	}
	left, done, hasDone := stem[plus+1:], "", false
	if i := strings.IndexByte(left, '-'); i >= 0 {
		left, done, hasDone = left[:i], left[i+1:], true
	}
	l, ok1 := parseCounter(left)
	d, ok2 := parseCounter(done)
	if !ok1 || (hasDone && !ok2) {
		// Not a counter: a '+' that is part of the name.
		return e, nil
	}
	e.ID, e.Counting, e.TriesLeft = stem[:plus], true, l
	if hasDone {
		e.TriesDone = d
	}
	return e, nil
}

// parseCounter accepts only plain decimal digits, as the Boot Loader
// Specification writes them.
func parseCounter(s string) (uint64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// Bad reports whether the entry has used up its boot tries: systemd-boot
// sorts such entries last, and they should not be booted.
func (e Entry) Bad() bool { return e.Counting && e.TriesLeft == 0 }

// Kargs returns the parsed options line.
func (e Entry) Kargs() Kargs { return ParseKargs(e.Options) }

// OstreeArg returns the value of the entry's ostree= kernel argument, e.g.
// "/ostree/boot.1/fedora/BOOTCSUM/0", or "" when it has none. Like libostree
// it uses the first ostree= argument.
func (e Entry) OstreeArg() string {
	for _, a := range e.Kargs().args {
		if a.Key == "ostree" && a.HasValue {
			return a.Value
		}
	}
	return ""
}

// Validate checks that Marshal can write e so that ParseEntry reads back
// the same entry.
func (e Entry) Validate() error {
	if _, err := parseEntryName(e.Name); err != nil {
		return err
	}
	if e.Linux == "" {
		return fmt.Errorf("boot entry %s: no linux path", e.Name)
	}
	check := func(key, v string, optional bool) error {
		if v == "" && optional {
			return nil
		}
		if v == "" || v != strings.Trim(v, entrySpace) || strings.ContainsAny(v, "\n\x00") || !utf8.ValidString(v) {
			return fmt.Errorf("boot entry %s: %s value %q cannot be written on one line", e.Name, key, v)
		}
		return nil
	}
	errs := []error{
		check("title", e.Title, true), check("version", e.Version, true),
		check("options", e.Options, true), check("devicetree", e.Devicetree, true),
		check("linux", e.Linux, false),
	}
	for _, v := range e.Initrd {
		errs = append(errs, check("initrd", v, false))
	}
	for _, f := range e.Extra {
		if !validKey(f.Key) || f.Key == "title" || f.Key == "version" || f.Key == "options" ||
			f.Key == "linux" || f.Key == "initrd" || f.Key == "devicetree" {
			return fmt.Errorf("boot entry %s: extra key %q is not a valid extra key", e.Name, f.Key)
		}
		errs = append(errs, check(f.Key, f.Value, false))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Marshal returns the entry file contents in libostree's key order (title,
// version, options, devicetree, linux, initrd..., then the other keys in
// order), so an entry libostree wrote marshals to the same bytes. Comments
// are not kept. Marshal assumes a valid entry (see Validate): it replaces
// newlines and NUL bytes in values with spaces rather than write a broken
// file.
func (e Entry) Marshal() []byte {
	var b bytes.Buffer
	put := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(strings.Map(func(r rune) rune {
			if r == '\n' || r == 0 {
				return ' '
			}
			return r
		}, v))
		b.WriteByte('\n')
	}
	put("title", e.Title)
	put("version", e.Version)
	put("options", e.Options)
	put("devicetree", e.Devicetree)
	put("linux", e.Linux)
	for _, v := range e.Initrd {
		put("initrd", v)
	}
	for _, f := range e.Extra {
		put(f.Key, f.Value)
	}
	return b.Bytes()
}
