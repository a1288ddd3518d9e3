package e2e

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// forwarderDLL returns a PE32+ (x86-64) DLL named name that holds no code:
// only an export table whose every entry forwards to another DLL's
// function ("advapi32.SystemFunction036").
func forwarderDLL(name string, forwards map[string]string) []byte {
	const (
		fileAlign = 0x200
		sectRVA   = 0x1000
		headers   = 0x200
	)
	names := make([]string, 0, len(forwards))
	for n := range forwards {
		names = append(names, n)
	}
	sort.Strings(names)
	n := uint32(len(names))
	// The export section: directory, then the three arrays, then strings.
	var strs bytes.Buffer
	dirSize := uint32(40)
	funcsOff := dirSize
	namesOff := funcsOff + 4*n
	ordsOff := namesOff + 4*n
	strOff := ordsOff + 2*n
	addStr := func(s string) uint32 {
		off := strOff + uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		return sectRVA + off
	}
	dllName := addStr(name)
	funcRVAs := make([]uint32, n)
	nameRVAs := make([]uint32, n)
	for i, e := range names {
		nameRVAs[i] = addStr(e)
		funcRVAs[i] = addStr(forwards[e])
	}
	var sec bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&sec, le, v) }
	w([4]uint32{0, 0, 0, dllName}) // characteristics, timestamp, version, name
	w([6]uint32{1, n, n, sectRVA + funcsOff, sectRVA + namesOff, sectRVA + ordsOff})
	w(funcRVAs)
	w(nameRVAs)
	for i := range names {
		w(uint16(i))
	}
	sec.Write(strs.Bytes())
	size := uint32(sec.Len())
	raw := (size + fileAlign - 1) &^ (fileAlign - 1)

	var f bytes.Buffer
	h := func(v any) { binary.Write(&f, le, v) }
	dos := make([]byte, 64)
	copy(dos, "MZ")
	le.PutUint32(dos[0x3c:], 0x40)
	f.Write(dos)
	f.WriteString("PE\x00\x00")
	h(uint16(0x8664)) // x86-64
	h(uint16(1))      // one section
	h([3]uint32{})    // timestamp, symbols
	h(uint16(240))    // optional header size
	h(uint16(0x2022)) // executable image, large address aware, DLL
	h(uint16(0x20b))  // PE32+
	h([2]uint8{14, 0})
	h([5]uint32{0, raw, 0, 0, sectRVA}) // code, data, bss sizes, entry point (none), base of code
	h(uint64(0x180000000))
	h([2]uint32{0x1000, fileAlign})
	h([6]uint16{6, 0, 0, 0, 6, 0})
	h([4]uint32{0, sectRVA + (size+0xfff)&^0xfff, headers, 0}) // win32 version, image size, headers size, checksum
	h(uint16(3))                                               // console subsystem
	h(uint16(0x0140))                                          // dynamic base, NX compatible
	h([4]uint64{0x100000, 0x1000, 0x100000, 0x1000})
	h([2]uint32{0, 16})
	h([2]uint32{sectRVA, size}) // export directory
	h(make([]uint32, 30))       // the other 15 directories
	h([8]byte{'.', 'r', 'd', 'a', 't', 'a'})
	h([4]uint32{size, sectRVA, raw, headers})
	h([3]uint32{})
	h(uint32(0x40000040)) // initialized data, readable
	f.Write(make([]byte, headers-f.Len()))
	f.Write(sec.Bytes())
	f.Write(make([]byte, raw-size))
	return f.Bytes()
}
