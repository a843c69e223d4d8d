package bootloader

// strverscmp compares version strings like glibc's strverscmp(3), which
// libostree uses to order boot entries: digit runs compare as numbers
// ("9" < "10"), and runs with leading zeros as fractions ("09" < "9").
// It returns <0, 0 or >0.
func strverscmp(s1, s2 string) int {
	// The states and tables of glibc's implementation.
	const (
		sN = 0 // normal
		sI = 3 // comparing integral part
		sF = 6 // comparing fractional parts
		sZ = 9 // idem but with leading zeroes only
	)
	const (
		cmp = 2 // return the byte difference
		ln  = 3 // compare the lengths of the digit runs
	)
	nextState := [...]int{
		/* sN */ sN, sI, sZ,
		/* sI */ sN, sI, sI,
		/* sF */ sN, sF, sF,
		/* sZ */ sN, sF, sZ,
	}
	resultType := [...]int{
		/* sN */ cmp, cmp, cmp, cmp, ln, cmp, cmp, cmp, cmp,
		/* sI */ cmp, -1, -1, +1, ln, ln, +1, ln, ln,
		/* sF */ cmp, cmp, cmp, cmp, cmp, cmp, cmp, cmp, cmp,
		/* sZ */ cmp, +1, +1, -1, cmp, cmp, -1, cmp, cmp,
	}
	at := func(s string, i int) int {
		if i < len(s) {
			return int(s[i])
		}
		return 0
	}
	isDigit := func(c int) bool { return c >= '0' && c <= '9' }
	class := func(c int) int {
		n := 0
		if c == '0' {
			n++
		}
		if isDigit(c) {
			n++
		}
		return n
	}
	if s1 == s2 {
		return 0
	}
	i := 0
	c1, c2 := at(s1, i), at(s2, i)
	i++
	state := sN + class(c1)
	diff := c1 - c2
	for diff == 0 {
		if c1 == 0 {
			return 0
		}
		state = nextState[state]
		c1, c2 = at(s1, i), at(s2, i)
		i++
		state += class(c1)
		diff = c1 - c2
	}
	switch r := resultType[state*3+class(c2)]; r {
	case cmp:
		return diff
	case ln:
		// i is the index just after c1 and c2.
		j := i
		for isDigit(at(s1, j)) {
			if !isDigit(at(s2, j)) {
				return 1
			}
			j++
		}
		if isDigit(at(s2, j)) {
			return -1
		}
		return diff
	default:
		return r
	}
}
