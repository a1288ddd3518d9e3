// Package hostset writes a list of host names in compact form, as
// ClusterShell writes node sets: web[01-03,07],db[1-2],bastion. The CLI's
// folded tables and the web dashboard head each group of hosts with it.
package hostset

import (
	"sort"
	"strconv"
	"strings"
)

// Compact returns hosts in compact form, as ClusterShell writes node sets:
// names that differ only in their last run of digits fold into one
// bracketed range list, zero padding kept (web[01-03,07],db[1-2],bastion).
// Groups come in the order their first name comes in hosts; a number is
// listed once however often it comes.
func Compact(hosts []string) string {
	type key struct {
		prefix, suffix string
		width          int // digits of a zero-padded number, else 0
	}
	type parsed struct {
		k   key
		n   uint64
		num bool
	}
	ps := make([]parsed, len(hosts))
	padded := map[key]bool{} // key with width: some number of it is padded
	for i, h := range hosts {
		end := len(h)
		for end > 0 && !isDigit(h[end-1]) {
			end--
		}
		start := end
		for start > 0 && isDigit(h[start-1]) {
			start--
		}
		digits := h[start:end]
		n, err := strconv.ParseUint(digits, 10, 64)
		if digits == "" || err != nil || len(digits) > 18 {
			ps[i] = parsed{k: key{prefix: h}}
			continue
		}
		k := key{prefix: h[:start], suffix: h[end:]}
		if len(digits) > 1 && digits[0] == '0' {
			k.width = len(digits)
			padded[k] = true
		}
		ps[i] = parsed{k: k, n: n, num: true}
	}
	// An unpadded number as long as the padded ones beside it (web10 with
	// web01) is one of them.
	for i, p := range ps {
		if p.num && p.k.width == 0 {
			w := len(strconv.FormatUint(p.n, 10))
			if pk := (key{p.k.prefix, p.k.suffix, w}); w > 1 && padded[pk] {
				ps[i].k = pk
			}
		}
	}
	type group struct {
		k    key
		num  bool
		nums []uint64
	}
	var order []*group
	groups := map[key]*group{}
	for _, p := range ps {
		g := groups[p.k]
		if g == nil {
			g = &group{k: p.k, num: p.num}
			groups[p.k] = g
			order = append(order, g)
		}
		if p.num {
			g.nums = append(g.nums, p.n)
		}
	}
	var b strings.Builder
	for i, g := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g.k.prefix)
		if !g.num {
			continue
		}
		nums := g.nums
		sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
		nums = compactUint(nums)
		if len(nums) == 1 {
			b.WriteString(pad(nums[0], g.k.width))
			b.WriteString(g.k.suffix)
			continue
		}
		b.WriteByte('[')
		for j := 0; j < len(nums); {
			k := j
			for k+1 < len(nums) && nums[k+1] == nums[k]+1 {
				k++
			}
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(pad(nums[j], g.k.width))
			if k > j {
				b.WriteByte('-')
				b.WriteString(pad(nums[k], g.k.width))
			}
			j = k + 1
		}
		b.WriteByte(']')
		b.WriteString(g.k.suffix)
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// pad writes n in decimal with at least width digits.
func pad(n uint64, width int) string {
	s := strconv.FormatUint(n, 10)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// compactUint drops repeats from sorted s.
func compactUint(s []uint64) []uint64 {
	out := s[:0]
	for i, n := range s {
		if i == 0 || n != s[i-1] {
			out = append(out, n)
		}
	}
	return out
}
