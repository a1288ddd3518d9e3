package model

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"os"
	"runtime"
	"strings"
	"testing"
)

// elfHeader is a 64- or 32-bit ELF header with no sections or segments.
func elfHeader(class elf.Class, data elf.Data, osabi elf.OSABI, typ elf.Type, m elf.Machine) []byte {
	var bo binary.ByteOrder = binary.LittleEndian
	if data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	b := make([]byte, 64)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION], b[elf.EI_OSABI] = byte(class), byte(data), byte(elf.EV_CURRENT), byte(osabi)
	bo.PutUint16(b[16:], uint16(typ))
	bo.PutUint16(b[18:], uint16(m))
	bo.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	return b
}

// machoHeader is a 64-bit Mach-O header with no load commands.
func machoHeader(typ macho.Type, cpu macho.Cpu) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b[0:], macho.Magic64)
	binary.LittleEndian.PutUint32(b[4:], uint32(cpu))
	binary.LittleEndian.PutUint32(b[12:], uint32(typ))
	return b
}

// peHeader is a DOS stub, the PE signature and a COFF header with no
// sections and no optional header.
func peHeader(machine, characteristics uint16) []byte {
	b := make([]byte, 512) // zeros after the headers: no symbols, no string table
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], machine)
	binary.LittleEndian.PutUint16(b[0x44+18:], characteristics)
	return b
}

func TestBinaryPlatform(t *testing.T) {
	le, be, c64, c32 := elf.ELFDATA2LSB, elf.ELFDATA2MSB, elf.ELFCLASS64, elf.ELFCLASS32
	tests := []struct {
		name, os, arch, err string
		b                   []byte
	}{
		{"linux amd64", "linux", "amd64", "", elfHeader(c64, le, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_X86_64)},
		{"linux arm64 pie", "linux", "arm64", "", elfHeader(c64, le, elf.ELFOSABI_LINUX, elf.ET_DYN, elf.EM_AARCH64)},
		{"linux 386", "linux", "386", "", elfHeader(c32, le, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_386)},
		{"linux arm", "linux", "arm", "", elfHeader(c32, le, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_ARM)},
		{"linux ppc64le", "linux", "ppc64le", "", elfHeader(c64, le, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_PPC64)},
		{"linux s390x", "linux", "s390x", "", elfHeader(c64, be, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_S390)},
		{"linux riscv64", "linux", "riscv64", "", elfHeader(c64, le, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_RISCV)},
		{"freebsd amd64", "freebsd", "amd64", "", elfHeader(c64, le, elf.ELFOSABI_FREEBSD, elf.ET_EXEC, elf.EM_X86_64)},
		{"freebsd arm64", "freebsd", "arm64", "", elfHeader(c64, le, elf.ELFOSABI_FREEBSD, elf.ET_EXEC, elf.EM_AARCH64)},
		{"darwin amd64", "darwin", "amd64", "", machoHeader(macho.TypeExec, macho.CpuAmd64)},
		{"darwin arm64", "darwin", "arm64", "", machoHeader(macho.TypeExec, macho.CpuArm64)},
		{"windows amd64", "windows", "amd64", "", peHeader(pe.IMAGE_FILE_MACHINE_AMD64, pe.IMAGE_FILE_EXECUTABLE_IMAGE)},
		{"windows arm64", "windows", "arm64", "", peHeader(pe.IMAGE_FILE_MACHINE_ARM64, pe.IMAGE_FILE_EXECUTABLE_IMAGE)},

		{"big-endian ppc64", "", "", "does not build", elfHeader(c64, be, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_PPC64)},
		{"elf object file", "", "", "not an executable", elfHeader(c64, le, elf.ELFOSABI_NONE, elf.ET_REL, elf.EM_X86_64)},
		{"netbsd", "", "", "not Linux or FreeBSD", elfHeader(c64, le, elf.ELFOSABI_NETBSD, elf.ET_EXEC, elf.EM_X86_64)},
		{"mach-o dylib", "", "", "not an executable", machoHeader(macho.TypeDylib, macho.CpuArm64)},
		{"mach-o ppc", "", "", "not an executable", machoHeader(macho.TypeExec, macho.CpuPpc)},
		{"pe dll without image flag", "", "", "not an executable", peHeader(pe.IMAGE_FILE_MACHINE_AMD64, 0)},
		{"script", "", "", "no ELF, Mach-O or PE header", []byte("#!/bin/sh\necho hi\n")},
		{"short", "", "", "header", []byte("MZ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goos, goarch, err := BinaryPlatform(bytes.NewReader(tt.b))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("BinaryPlatform = %s/%s, %v; want an error with %q", goos, goarch, err, tt.err)
				}
				return
			}
			if err != nil || goos != tt.os || goarch != tt.arch {
				t.Fatalf("BinaryPlatform = %s/%s, %v; want %s/%s", goos, goarch, err, tt.os, tt.arch)
			}
		})
	}
}

// TestBinaryPlatformSelf reads the running test binary, a real executable.
func TestBinaryPlatformSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	goos, goarch, err := BinaryPlatform(f)
	if err != nil || goos != runtime.GOOS || goarch != runtime.GOARCH {
		t.Fatalf("BinaryPlatform(%s) = %s/%s, %v; want %s/%s", exe, goos, goarch, err, runtime.GOOS, runtime.GOARCH)
	}
}

func TestGoOSAndArch(t *testing.T) {
	for _, tt := range []struct{ system, os string }{
		{"", "linux"}, {"linux", "linux"}, {"Linux", "linux"}, {"FreeBSD", "freebsd"}, {"darwin", "darwin"},
		{"windows", "windows"}, {"SunOS", ""},
	} {
		if got := GoOS(tt.system); got != tt.os {
			t.Errorf("GoOS(%q) = %q; want %q", tt.system, got, tt.os)
		}
	}
	for _, tt := range []struct{ machine, arch string }{
		{"x86_64", "amd64"}, {"amd64", "amd64"}, {"aarch64", "arm64"}, {"arm64", "arm64"}, {"i686", "386"},
		{"i386", "386"}, {"armv7l", "arm"}, {"ppc64le", "ppc64le"}, {"s390x", "s390x"}, {"riscv64", "riscv64"},
		{"ppc64", ""}, {"mips", ""},
	} {
		if got := GoArch(tt.machine); got != tt.arch {
			t.Errorf("GoArch(%q) = %q; want %q", tt.machine, got, tt.arch)
		}
	}
}
