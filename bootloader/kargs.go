package bootloader

import (
	"errors"
	"fmt"
	"strings"
)

// Arg is one kernel argument: a bare key ("quiet"), a key with a value
// ("root=UUID=x"), or a key with an empty value ("rd.lvm=").
//
// Key and Value are what the kernel sees: the quotes of `key="a b"` and of
// `"key=a b"` are removed, following the kernel's next_arg (lib/cmdline.c).
// The argument keeps the text it was parsed from, so printing it gives back
// exactly what was written.
type Arg struct {
	Key      string
	Value    string
	HasValue bool

	raw string
}

// String returns the argument as it appears on a command line: the text it
// was parsed from, or for an Arg built by hand, key=value with the value
// quoted when it holds white space.
func (a Arg) String() string {
	if a.raw != "" {
		return a.raw
	}
	if !a.HasValue {
		return a.Key
	}
	if strings.ContainsAny(a.Value, kernelSpace) {
		return a.Key + `="` + a.Value + `"`
	}
	return a.Key + "=" + a.Value
}

// same reports whether a and b mean the same argument to the kernel.
func (a Arg) same(b Arg) bool {
	return a.Key == b.Key && a.HasValue == b.HasValue && a.Value == b.Value
}

// kernelSpace is what the kernel's isspace() splits the command line on
// (its Latin-1 no-break space aside).
const kernelSpace = " \t\n\v\f\r"

// parseArg derives key and value from one token of a command line the way
// the kernel's next_arg does it.
func parseArg(raw string) Arg {
	a := Arg{raw: raw}
	t := raw
	quoted := strings.HasPrefix(t, `"`)
	if quoted {
		t = t[1:]
	}
	closing := quoted && strings.HasSuffix(t, `"`)

	// The kernel looks for the first '=' after the first character.
	eq := -1
	if len(t) > 1 {
		if i := strings.IndexByte(t[1:], '='); i >= 0 {
			eq = i + 1
		}
	}
	if eq < 0 {
		a.Key = t
		if closing {
			a.Key = t[:len(t)-1]
		}
		return a
	}
	a.Key, a.Value, a.HasValue = t[:eq], t[eq+1:], true
	if strings.HasPrefix(a.Value, `"`) {
		a.Value = a.Value[1:]
		if strings.HasSuffix(a.Value, `"`) {
			a.Value = a.Value[:len(a.Value)-1]
			closing = false // that quote is gone already
		}
	}
	if closing && strings.HasSuffix(a.Value, `"`) {
		a.Value = a.Value[:len(a.Value)-1]
	}
	return a
}

// splitArgs splits a command line into tokens on white space outside
// double quotes. An unterminated quote runs to the end of the string and
// makes one last token, as in the kernel and in libostree.
func splitArgs(s string) []string {
	var out []string
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if start < 0 {
			if strings.IndexByte(kernelSpace, c) >= 0 {
				continue
			}
			start = i
		}
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && strings.IndexByte(kernelSpace, c) >= 0:
			out = append(out, s[start:i])
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// balanced reports whether tok closes every quote it opens.
func balanced(tok string) bool {
	return strings.Count(tok, `"`)%2 == 0
}

// Kargs is an ordered list of kernel arguments, as in the options line of a
// BLS entry. Keys may repeat (console=tty0 console=ttyS0). The zero value is
// an empty list.
//
// Append, Replace and Delete follow `rpm-ostree kargs --append/--replace/
// --delete` (libostree's ostree_kernel_args_append, _new_replace and
// _delete): each takes one or more space-separated arguments, and a call
// that fails leaves the list unchanged. Values are compared as the kernel
// sees them, so foo="a b" and "foo=a b" are the same argument.
type Kargs struct {
	args []Arg
}

// ParseKargs parses a kernel command line with the kernel's quoting rules:
// arguments are separated by white space outside double quotes, and
// `key="value with spaces"` and `"key=value with spaces"` have their quotes
// removed from Key and Value. It accepts any input; an unterminated quote
// runs to the end of the line.
func ParseKargs(s string) Kargs {
	toks := splitArgs(s)
	k := Kargs{args: make([]Arg, 0, len(toks))}
	for _, t := range toks {
		k.args = append(k.args, parseArg(t))
	}
	return k
}

// String returns the arguments separated by single spaces, each as written.
func (k Kargs) String() string {
	parts := make([]string, len(k.args))
	for i, a := range k.args {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

// Args returns a copy of the arguments in order.
func (k Kargs) Args() []Arg {
	return append([]Arg(nil), k.args...)
}

// Len returns the number of arguments.
func (k Kargs) Len() int { return len(k.args) }

// Get returns the values of every argument named key, in order. A bare key
// contributes an empty string; use Has to tell "absent" from "bare".
func (k Kargs) Get(key string) []string {
	var out []string
	for _, a := range k.args {
		if a.Key == key {
			out = append(out, a.Value)
		}
	}
	return out
}

// Has reports whether an argument named key is present.
func (k Kargs) Has(key string) bool {
	return k.index(key, 0) >= 0
}

// index returns the position of the first argument named key at or after
// from, or -1.
func (k Kargs) index(key string, from int) int {
	for i := from; i < len(k.args); i++ {
		if k.args[i].Key == key {
			return i
		}
	}
	return -1
}

// count returns how many arguments are named key.
func (k Kargs) count(key string) int {
	n := 0
	for _, a := range k.args {
		if a.Key == key {
			n++
		}
	}
	return n
}

// ErrKargNotFound is wrapped by Replace and Delete when the key or the
// key=value they name is not present.
var ErrKargNotFound = errors.New("kernel argument not found")

// ErrKargAmbiguous is wrapped by Replace and Delete when a key has several
// values and the argument does not say which one it means.
var ErrKargAmbiguous = errors.New("kernel argument is ambiguous")

// tokens splits an argument given to Append, Replace or Delete and refuses
// what cannot be written back safely.
func tokens(op, arg string) ([]string, error) {
	if strings.IndexByte(arg, 0) >= 0 {
		return nil, fmt.Errorf("%s kernel argument %q: contains a NUL byte", op, arg)
	}
	toks := splitArgs(arg)
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s kernel argument: empty argument; give key or key=value", op)
	}
	for _, t := range toks {
		if !balanced(t) {
			return nil, fmt.Errorf("%s kernel argument %q: unterminated double quote", op, t)
		}
		if parseArg(t).Key == "" {
			return nil, fmt.Errorf("%s kernel argument %q: empty key", op, t)
		}
	}
	return toks, nil
}

// appendable refuses to add after a last argument whose quote is still
// open: the new arguments would become part of it.
func (k *Kargs) appendable(op string) error {
	if n := len(k.args); n > 0 && !balanced(k.args[n-1].raw) {
		return fmt.Errorf("%s kernel argument: the existing argument %q has an unterminated double quote; replace or delete it first", op, k.args[n-1].raw)
	}
	return nil
}

// Append adds each argument in arg at the end, even when its key is
// already present (as `rpm-ostree kargs --append`). It fails on an empty
// argument, an empty key or an unterminated quote.
func (k *Kargs) Append(arg string) error {
	toks, err := tokens("append", arg)
	if err != nil {
		return err
	}
	if err := k.appendable("append"); err != nil {
		return err
	}
	for _, t := range toks {
		k.args = append(k.args, parseArg(t))
	}
	return nil
}

// AppendIfMissing appends each argument in arg whose key is not present
// yet (as `rpm-ostree kargs --append-if-missing`; the key alone decides).
func (k *Kargs) AppendIfMissing(arg string) error {
	toks, err := tokens("append", arg)
	if err != nil {
		return err
	}
	for _, t := range toks {
		a := parseArg(t)
		if k.Has(a.Key) {
			continue
		}
		if err := k.appendable("append"); err != nil {
			return err
		}
		k.args = append(k.args, a)
	}
	return nil
}

// Replace changes the value of existing arguments, in place. Each
// argument in arg is one of:
//
//	key=old=new  the argument key=old becomes key=new
//	key=value    the only argument named key becomes key=value
//	key          the only argument named key becomes the bare key
//
// It fails, wrapping ErrKargNotFound, when no argument is named key or none
// is key=old, and, wrapping ErrKargAmbiguous, when key=value or key is used
// for a key with several values. Unlike libostree, an '=' inside quotes is
// part of the value: key="a=b" sets the value a=b.
func (k *Kargs) Replace(arg string) error {
	toks, err := tokens("replace", arg)
	if err != nil {
		return err
	}
	next := Kargs{args: k.Args()}
	for _, t := range toks {
		if err := next.replaceOne(t); err != nil {
			return err
		}
	}
	*k = next
	return nil
}

func (k *Kargs) replaceOne(tok string) error {
	a := parseArg(tok)
	if !k.Has(a.Key) {
		return fmt.Errorf("replace kernel argument %q: no argument %q: %w", tok, a.Key, ErrKargNotFound)
	}
	if rawKey, old, nw, ok := splitOldNew(tok); ok {
		want, repl := parseArg(rawKey+"="+old), rawKey+"="+nw
		if !balanced(repl) || !balanced(rawKey+"="+old) {
			return fmt.Errorf("replace kernel argument %q: quotes do not pair up in %q or %q; quote KEY=OLD=NEW as %s=\"OLD\"=\"NEW\"", tok, rawKey+"="+old, repl, a.Key)
		}
		for i, cur := range k.args {
			if cur.same(want) {
				k.args[i] = parseArg(repl)
				return nil
			}
		}
		return fmt.Errorf("replace kernel argument %q: no argument %s=%s (KEY=OLD=NEW splits at the first '='; quote a value that holds one: %s=\"OLD\"=NEW or %s=\"NEW\"): %w", tok, a.Key, want.Value, a.Key, a.Key, ErrKargNotFound)
	}
	if n := k.count(a.Key); n > 1 {
		return fmt.Errorf("replace kernel argument %q: %d arguments named %q; say which with %s=OLD=NEW: %w", tok, n, a.Key, a.Key, ErrKargAmbiguous)
	}
	k.args[k.index(a.Key, 0)] = a
	return nil
}

// splitOldNew splits key=old=new at the first '=' of the value that is
// outside double quotes.
func splitOldNew(tok string) (rawKey, old, nw string, ok bool) {
	eq := -1
	if len(tok) > 1 {
		if i := strings.IndexByte(tok[1:], '='); i >= 0 {
			eq = i + 1
		}
	}
	if eq < 0 {
		return "", "", "", false
	}
	rawKey, val := tok[:eq], tok[eq+1:]
	quoted := strings.Count(rawKey, `"`)%2 == 1
	for i := 0; i < len(val); i++ {
		switch {
		case val[i] == '"':
			quoted = !quoted
		case val[i] == '=' && !quoted:
			return rawKey, val[:i], val[i+1:], true
		}
	}
	return "", "", "", false
}

// Delete removes arguments. Each argument in arg is one of:
//
//	key=value  removes that argument
//	key=       removes the argument with the empty value
//	key        removes the only argument named key (whatever its value),
//	           or, when there are several, the bare key
//
// It fails, wrapping ErrKargNotFound, when nothing matches, and, wrapping
// ErrKargAmbiguous, when key is given for a key with several values and
// none of them bare.
func (k *Kargs) Delete(arg string) error {
	toks, err := tokens("delete", arg)
	if err != nil {
		return err
	}
	next := Kargs{args: k.Args()}
	for _, t := range toks {
		if err := next.deleteOne(t); err != nil {
			return err
		}
	}
	*k = next
	return nil
}

// DeleteIfPresent deletes each argument in arg whose key is present (as
// `rpm-ostree kargs --delete-if-present`). A present key with another value
// is still an error, as in libostree.
func (k *Kargs) DeleteIfPresent(arg string) error {
	toks, err := tokens("delete", arg)
	if err != nil {
		return err
	}
	next := Kargs{args: k.Args()}
	for _, t := range toks {
		if !next.Has(parseArg(t).Key) {
			continue
		}
		if err := next.deleteOne(t); err != nil {
			return err
		}
	}
	*k = next
	return nil
}

func (k *Kargs) deleteOne(tok string) error {
	a := parseArg(tok)
	n := k.count(a.Key)
	if n == 0 {
		return fmt.Errorf("delete kernel argument %q: no argument %q: %w", tok, a.Key, ErrKargNotFound)
	}
	if n == 1 {
		i := k.index(a.Key, 0)
		if a.HasValue && !k.args[i].same(a) {
			return fmt.Errorf("delete kernel argument %q: the argument is %q: %w", tok, k.args[i].String(), ErrKargNotFound)
		}
		k.args = append(k.args[:i], k.args[i+1:]...)
		return nil
	}
	for i, cur := range k.args {
		if cur.same(a) {
			k.args = append(k.args[:i], k.args[i+1:]...)
			return nil
		}
	}
	if !a.HasValue {
		return fmt.Errorf("delete kernel argument %q: %d arguments named %q; say which with %s=VALUE: %w", tok, n, a.Key, a.Key, ErrKargAmbiguous)
	}
	return fmt.Errorf("delete kernel argument %q: none of the %d arguments named %q has that value: %w", tok, n, a.Key, ErrKargNotFound)
}

// KargsEdit is one `rpm-ostree kargs` invocation: lists of arguments to
// delete, replace and append.
type KargsEdit struct {
	Delete          []string
	DeleteIfPresent []string
	Replace         []string
	Append          []string
	AppendIfMissing []string
}

// Apply performs e in rpm-ostree's order: deletions, then replacements,
// then appends. On error nothing is changed.
func (k *Kargs) Apply(e KargsEdit) error {
	next := Kargs{args: k.Args()}
	steps := []struct {
		args []string
		do   func(string) error
	}{
		{e.Delete, next.Delete},
		{e.DeleteIfPresent, next.DeleteIfPresent},
		{e.Replace, next.Replace},
		{e.Append, next.Append},
		{e.AppendIfMissing, next.AppendIfMissing},
	}
	for _, s := range steps {
		for _, a := range s.args {
			if err := s.do(a); err != nil {
				return err
			}
		}
	}
	*k = next
	return nil
}
