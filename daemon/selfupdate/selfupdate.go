// Package selfupdate checks a new felix binary and swaps it in for the
// running one: Check refuses a file that is not an executable for this
// os/arch (read from its header, before anything runs it), hashes it and
// asks it its version; Install copies it next to the current binary and
// renames it over, keeping the current one as PATH.prev; Rollback puts
// PATH.prev back. Every step leaves a complete binary at PATH, old or new:
// a process killed between any two of them never leaves a partial one.
package selfupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode"
)

// VersionTimeout bounds how long Check waits for `FILE version`.
const VersionTimeout = 10 * time.Second

// PrevSuffix names the binary kept by Install: PATH.prev.
const PrevSuffix = ".prev"

// ErrNotExecutable is wrapped by Check and Platform's error for a file that
// is not an executable for the wanted os/arch (a script, another
// architecture, a truncated or corrupt binary).
var ErrNotExecutable = errors.New("not an executable for this os/arch")

// ErrChecksum is wrapped by Check's error when the file's sha256 is not
// the one wanted.
var ErrChecksum = errors.New("sha256 mismatch")

// Checked is a binary that passed Check.
type Checked struct {
	Path    string
	SHA256  string // hex, lower case
	Version string // first line `Path version` printed
	GOOS    string
	GOARCH  string
}

// Platform reads an executable's header and returns the os and arch it is
// for, in Go's names. It runs nothing. A file that is no executable, or
// whose segments reach past its end (truncated), is an error wrapping
// ErrNotExecutable. ELF files are "linux" unless their OS/ABI byte says
// FreeBSD: the header alone cannot tell Linux from other SysV systems.
func Platform(path string) (goos, goarch string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("read header of %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", fmt.Errorf("read header of %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s: not a regular file: %w", path, ErrNotExecutable)
	}
	size := uint64(st.Size())
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return "", "", fmt.Errorf("%s: too short for an executable: %w", path, ErrNotExecutable)
	}
	bad := func(format string, args ...any) (string, string, error) {
		return "", "", fmt.Errorf("%s: %s: %w", path, fmt.Sprintf(format, args...), ErrNotExecutable)
	}
	switch {
	case bytes.Equal(magic[:], []byte(elf.ELFMAG)):
		ef, err := elf.NewFile(f)
		if err != nil {
			return bad("bad ELF header: %v", err)
		}
		if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
			return bad("ELF file of type %v, not an executable", ef.Type)
		}
		for _, p := range ef.Progs {
			if p.Off+p.Filesz > size {
				return bad("truncated: a segment ends at byte %d of %d", p.Off+p.Filesz, size)
			}
		}
		goos = "linux"
		if ef.OSABI == elf.ELFOSABI_FREEBSD {
			goos = "freebsd"
		}
		goarch = elfArch(ef)
		if goarch == "" {
			return bad("ELF machine %v", ef.Machine)
		}
		return goos, goarch, nil
	case magic[0] == 'M' && magic[1] == 'Z':
		pf, err := pe.NewFile(f)
		if err != nil {
			return bad("bad PE header: %v", err)
		}
		for _, s := range pf.Sections {
			if uint64(s.Offset)+uint64(s.Size) > size {
				return bad("truncated: section %s ends at byte %d of %d", s.Name, uint64(s.Offset)+uint64(s.Size), size)
			}
		}
		switch pf.Machine {
		case pe.IMAGE_FILE_MACHINE_AMD64:
			return "windows", "amd64", nil
		case pe.IMAGE_FILE_MACHINE_ARM64:
			return "windows", "arm64", nil
		case pe.IMAGE_FILE_MACHINE_I386:
			return "windows", "386", nil
		}
		return bad("PE machine %#x", pf.Machine)
	default:
		mf, err := macho.NewFile(f)
		if err != nil {
			return bad("no ELF, Mach-O or PE header")
		}
		if mf.Type != macho.TypeExec {
			return bad("Mach-O file of type %v, not an executable", mf.Type)
		}
		for _, l := range mf.Loads {
			if s, ok := l.(*macho.Segment); ok && s.Offset+s.Filesz > size {
				return bad("truncated: segment %s ends at byte %d of %d", s.Name, s.Offset+s.Filesz, size)
			}
		}
		switch mf.Cpu {
		case macho.CpuAmd64:
			return "darwin", "amd64", nil
		case macho.CpuArm64:
			return "darwin", "arm64", nil
		}
		return bad("Mach-O cpu %v", mf.Cpu)
	}
}

// elfArch maps an ELF header to GOARCH, "" for one Go does not build.
func elfArch(f *elf.File) string {
	is64 := f.Class == elf.ELFCLASS64
	le := f.Data == elf.ELFDATA2LSB
	switch {
	case f.Machine == elf.EM_X86_64 && is64:
		return "amd64"
	case f.Machine == elf.EM_AARCH64 && is64:
		return "arm64"
	case f.Machine == elf.EM_386 && !is64:
		return "386"
	case f.Machine == elf.EM_ARM && !is64:
		return "arm"
	case f.Machine == elf.EM_RISCV && is64:
		return "riscv64"
	case f.Machine == elf.EM_PPC64 && is64 && le:
		return "ppc64le"
	case f.Machine == elf.EM_PPC64 && is64:
		return "ppc64"
	case f.Machine == elf.EM_S390 && is64:
		return "s390x"
	case f.Machine == elf.EM_LOONGARCH && is64:
		return "loong64"
	case f.Machine == elf.EM_MIPS && is64 && le:
		return "mips64le"
	case f.Machine == elf.EM_MIPS && is64:
		return "mips64"
	case f.Machine == elf.EM_MIPS && le:
		return "mipsle"
	case f.Machine == elf.EM_MIPS:
		return "mips"
	}
	return ""
}

// HashFile returns the hex sha256 of a file.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NormalizeSHA256 returns want as lower-case hex, without a "sha256:"
// prefix, or an error when it is not 64 hex digits.
func NormalizeSHA256(want string) (string, error) {
	w := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(want), "sha256:"))
	if b, err := hex.DecodeString(w); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("sha256 %q: want 64 hex digits", want)
	}
	return w, nil
}

// Check verifies that path is an executable for goos/goarch (its header,
// before running anything), that its sha256 is wantSHA256 (hex, optional
// "sha256:" prefix; "" checks nothing but still reports the hash), and that
// `path version` prints a version within VersionTimeout (or ctx's deadline,
// whichever is first). goos/goarch must be the running platform: a binary
// for another one is refused, never run.
func Check(ctx context.Context, path, goos, goarch, wantSHA256 string) (Checked, error) {
	c := Checked{Path: path}
	var want string
	if wantSHA256 != "" {
		var err error
		if want, err = NormalizeSHA256(wantSHA256); err != nil {
			return c, err
		}
	}
	var err error
	if c.GOOS, c.GOARCH, err = Platform(path); err != nil {
		return c, err
	}
	if c.GOOS != goos || c.GOARCH != goarch {
		return c, fmt.Errorf("%s is for %s/%s, want %s/%s: %w", path, c.GOOS, c.GOARCH, goos, goarch, ErrNotExecutable)
	}
	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		return c, fmt.Errorf("%s: cannot run a %s/%s binary on %s/%s to ask its version", path, goos, goarch, runtime.GOOS, runtime.GOARCH)
	}
	if c.SHA256, err = HashFile(path); err != nil {
		return c, err
	}
	if want != "" && c.SHA256 != want {
		return c, fmt.Errorf("%s: sha256 is %s, want %s: %w", path, c.SHA256, want, ErrChecksum)
	}
	if c.Version, err = Version(ctx, path); err != nil {
		return c, err
	}
	return c, nil
}

// Version runs `path version` and returns the first line it prints. The
// run is bounded by VersionTimeout; on expiry the whole process group is
// killed.
func Version(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, VersionTimeout)
	defer cancel()
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("run %s version: %w", path, err)
	}
	cmd := exec.CommandContext(ctx, abs, "version")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	killTreeOnCancel(cmd)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &limitWriter{w: &out, n: 4096}
	err = cmd.Run()
	if ctx.Err() != nil {
		return "", fmt.Errorf("run %s version: no answer within %s: %w", path, VersionTimeout, ctx.Err())
	}
	if err != nil {
		return "", fmt.Errorf("run %s version: %w", path, err)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	line = strings.TrimSpace(line)
	if line == "" || len(line) > 64 || strings.IndexFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", fmt.Errorf("run %s version: want one printable line of at most 64 bytes, got %q", path, line)
	}
	return line, nil
}

// limitWriter keeps the first n bytes and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
