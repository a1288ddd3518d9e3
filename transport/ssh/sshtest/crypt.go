package sshtest

import (
	"crypto/sha512"
)

// cryptAlphabet is crypt(3)'s base-64 alphabet.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// b64Encode encodes b with cryptAlphabet, little-endian in 24-bit groups
// (only used to make a salt, so the exact bit order does not matter).
func b64Encode(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i += 3 {
		var w uint32
		n := 0
		for j := 0; j < 3 && i+j < len(b); j++ {
			w |= uint32(b[i+j]) << (8 * j)
			n++
		}
		for k := 0; k <= n; k++ {
			out = append(out, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	return string(out)
}

// sha512Crypt returns the SHA-512 crypt(3) hash ("$6$salt$...") of pw with
// the default 5000 rounds, as in Ulrich Drepper's "Unix crypt using SHA-256
// and SHA-512" specification. salt must be at most 16 characters.
func sha512Crypt(pw, salt string) string {
	p, s := []byte(pw), []byte(salt)
	const rounds = 5000

	b := sha512.New()
	b.Write(p)
	b.Write(s)
	b.Write(p)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(p)
	a.Write(s)
	for i := len(p); i > 0; i -= 64 {
		a.Write(sumB[:min(i, 64)])
	}
	for i := len(p); i > 0; i >>= 1 {
		if i&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(p)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range len(p) {
		dp.Write(p)
	}
	sumDP := dp.Sum(nil)
	pSeq := make([]byte, 0, len(p))
	for len(pSeq) < len(p) {
		pSeq = append(pSeq, sumDP[:min(64, len(p)-len(pSeq))]...)
	}

	ds := sha512.New()
	for range 16 + int(sumA[0]) {
		ds.Write(s)
	}
	sumDS := ds.Sum(nil)
	sSeq := sumDS[:len(s)]

	c := sumA
	for r := range rounds {
		h := sha512.New()
		if r&1 != 0 {
			h.Write(pSeq)
		} else {
			h.Write(c)
		}
		if r%3 != 0 {
			h.Write(sSeq)
		}
		if r%7 != 0 {
			h.Write(pSeq)
		}
		if r&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pSeq)
		}
		c = h.Sum(nil)
	}

	out := []byte("$6$" + salt + "$")
	enc := func(b2, b1, b0 byte, n int) {
		w := uint32(b2)<<16 | uint32(b1)<<8 | uint32(b0)
		for range n {
			out = append(out, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	order := [...][3]int{
		{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
		{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
		{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41},
	}
	for _, o := range order {
		enc(c[o[0]], c[o[1]], c[o[2]], 4)
	}
	enc(0, 0, c[63], 2)
	return string(out)
}
