package main

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
)

// distSubset is what TestDist builds with make dist when FELIX_DIST does
// not point at a full dist directory: a big-endian Linux and a macOS
// minion, and a Windows CLI, so that every header format is checked while
// the test stays short (the full list is checked by make dist itself).
var distSubset = map[string]string{
	"MINION_PLATFORMS": "linux/s390x darwin/arm64",
	"FELIX_PLATFORMS":  "windows/amd64",
	"MASTER_PLATFORMS": "",
}

// TestDist checks make dist's output: every binary of the platform lists
// exists and is an executable of its os/arch by its header (ELF machine,
// class, byte order and OS ABI; Mach-O CPU; PE machine), the minions for
// Linux and FreeBSD are static (no interpreter), and SHA256SUMS names
// every file there with its right sum. make dist runs it with FELIX_DIST
// set to its output; alone, it runs make dist for distSubset into a
// temporary directory.
func TestDist(t *testing.T) {
	dir := os.Getenv("FELIX_DIST")
	platforms := func(name string) []string { return strings.Fields(os.Getenv(name)) }
	if dir == "" {
		if _, err := exec.LookPath("make"); err != nil {
			testenv.Missing(t, "make is not installed: %v", err)
		}
		dir = t.TempDir()
		args := []string{"-C", "../..", "-j2", "--no-print-directory", "dist", "DIST=" + dir, "DIST_CHECK="}
		for k, v := range distSubset {
			args = append(args, k+"="+v)
		}
		cmd := exec.Command("make", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		platforms = func(name string) []string { return strings.Fields(distSubset[name]) }
	}

	want := map[string]string{} // file → os/arch ("" for a unit file)
	for _, prog := range []string{"minion", "felix", "master"} {
		for _, p := range platforms(strings.ToUpper(prog) + "_PLATFORMS") {
			name := prog + "-" + strings.ReplaceAll(p, "/", "-")
			if strings.HasPrefix(p, "windows/") {
				name += ".exe"
			}
			want[name] = p
		}
	}
	if len(platforms("MASTER_PLATFORMS")) > 0 {
		want["felix-master.service"], want["felix-minion.service"] = "", ""
	}
	if len(want) < 3 {
		t.Fatalf("only %d files expected (%v): the platform lists are empty", len(want), want)
	}

	sums := readSums(t, filepath.Join(dir, "SHA256SUMS"))
	for name, p := range want {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			sum, err := fileSum(path)
			if err != nil {
				t.Fatal(err)
			}
			if sums[name] != sum {
				t.Errorf("SHA256SUMS says %q for %s; its sha256 is %s", sums[name], name, sum)
			}
			if p != "" {
				checkExecutable(t, path, p, strings.HasPrefix(name, "minion-"))
			}
		})
	}
	for name := range sums {
		if _, ok := want[name]; !ok {
			t.Errorf("SHA256SUMS names %s, which make dist does not build", name)
		}
	}
}

// readSums reads a sha256sum file: name → hex sum.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: malformed line %q", path, sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// elfWant is the ELF header of each Linux or FreeBSD architecture.
var elfWant = map[string]struct {
	machine elf.Machine
	class   elf.Class
	data    elf.Data
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"386":     {elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64, elf.ELFDATA2LSB},
}

// checkExecutable checks path is an executable for platform (os/arch),
// and static when static is set (ELF only: macOS binaries always link
// libSystem).
func checkExecutable(t *testing.T, path, platform string, static bool) {
	t.Helper()
	goos, goarch, _ := strings.Cut(platform, "/")
	switch goos {
	case "linux", "freebsd":
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("%s: not ELF: %v", path, err)
		}
		defer f.Close()
		w, ok := elfWant[goarch]
		if !ok {
			t.Fatalf("%s: no ELF header known for %s", path, goarch)
		}
		if f.Machine != w.machine || f.Class != w.class || f.Data != w.data {
			t.Errorf("%s: ELF %s %s %s; want %s %s %s", path, f.Machine, f.Class, f.Data, w.machine, w.class, w.data)
		}
		abi := elf.ELFOSABI_NONE
		if goos == "freebsd" {
			abi = elf.ELFOSABI_FREEBSD
		}
		if f.OSABI != abi || f.Type != elf.ET_EXEC {
			t.Errorf("%s: ELF OS ABI %s type %s; want %s %s", path, f.OSABI, f.Type, abi, elf.ET_EXEC)
		}
		for _, p := range f.Progs {
			if static && (p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC) {
				t.Errorf("%s: has a %s segment: not static (CGO_ENABLED=0)", path, p.Type)
			}
		}
	case "darwin":
		f, err := macho.Open(path)
		if err != nil {
			t.Fatalf("%s: not Mach-O: %v", path, err)
		}
		defer f.Close()
		cpu := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
		if f.Cpu != cpu || f.Type != macho.TypeExec {
			t.Errorf("%s: Mach-O %s %s; want %s %s", path, f.Cpu, f.Type, cpu, macho.TypeExec)
		}
	case "windows":
		f, err := pe.Open(path)
		if err != nil {
			t.Fatalf("%s: not PE: %v", path, err)
		}
		defer f.Close()
		m := map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64}[goarch]
		if f.Machine != m || f.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE == 0 {
			t.Errorf("%s: PE machine %#x characteristics %#x; want machine %#x, an executable image", path, f.Machine, f.Characteristics, m)
		}
	default:
		t.Fatalf("%s: no header check for %s", path, goos)
	}
}
