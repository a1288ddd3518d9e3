package facts

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{
			name: "debian",
			in: `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
HOME_URL="https://www.debian.org/"
`,
			want: map[string]string{
				"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
				"NAME":        "Debian GNU/Linux",
				"VERSION_ID":  "12",
				"ID":          "debian",
				"HOME_URL":    "https://www.debian.org/",
			},
		},
		{name: "single quotes are literal", in: `A='x \" $y'`, want: map[string]string{"A": `x \" $y`}},
		{name: "double quote escapes", in: `A="say \"hi\" \$5 \\ \n"`, want: map[string]string{"A": `say "hi" $5 \ \n`}},
		{name: "unquoted escape", in: `A=Fedora\ Linux`, want: map[string]string{"A": "Fedora Linux"}},
		{name: "mixed quoting", in: `A="a b"'c d'e`, want: map[string]string{"A": "a bc de"}},
		{name: "empty values", in: "A=\nB=\"\"", want: map[string]string{"A": "", "B": ""}},
		{name: "equals in value", in: `A="k=v"`, want: map[string]string{"A": "k=v"}},
		{
			name: "comments blanks and junk skipped",
			in:   "# comment\n\n  ID=alpine  \nnot a line\n1BAD=x\nBAD KEY=x\nOPEN=\"unterminated\n",
			want: map[string]string{"ID": "alpine"},
		},
		{name: "later line wins", in: "ID=a\nID=b", want: map[string]string{"ID": "b"}},
		{name: "empty", in: "", want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOSRelease(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("parseOSRelease: %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("parseOSRelease(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMemTotal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{name: "kB", in: "MemTotal:       16314452 kB\nMemFree:         1234 kB\n", want: 16314452 * 1024},
		{name: "not first line", in: "Foo: 1 kB\nMemTotal: 2 kB\n", want: 2048},
		{name: "no unit", in: "MemTotal: 4096\n", want: 4096},
		{name: "missing", in: "MemFree: 1 kB\n", wantErr: true},
		{name: "bad number", in: "MemTotal: lots kB\n", wantErr: true},
		{name: "bad unit", in: "MemTotal: 1 MB\n", wantErr: true},
		{name: "no value", in: "MemTotal:\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMemTotal(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMemTotal(%q) error = %v; wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseMemTotal(%q) = %d; want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseUptime(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "350735.47 234388.90\n", want: 350735},
		{in: "0.99 0.5", want: 0},
		{in: "", wantErr: true},
		{in: "abc 1", wantErr: true},
		{in: "-5 1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseUptime(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseUptime(%q) error = %v; wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("parseUptime(%q) = %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestOS(t *testing.T) {
	tests := []struct {
		f    Facts
		want string
	}{
		{Facts{OSName: "debian", OSVersion: "12", OSPretty: "Debian GNU/Linux 12 (bookworm)"}, "debian 12"},
		{Facts{OSName: "arch", OSPretty: "Arch Linux"}, "arch"},
		{Facts{OSPretty: "Some Linux"}, "Some Linux"},
		{Facts{}, ""},
	}
	for _, tt := range tests {
		if got := tt.f.OS(); got != tt.want {
			t.Errorf("%+v.OS() = %q; want %q", tt.f, got, tt.want)
		}
	}
}

func TestGather(t *testing.T) {
	f, err := Gather(t.Context())
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	t.Logf("facts: %+v", f)
	if f.Hostname == "" || f.Kernel == "" || f.Arch == "" {
		t.Errorf("Gather: hostname %q kernel %q arch %q; want all non-empty", f.Hostname, f.Kernel, f.Arch)
	}
	if f.System != runtime.GOOS {
		t.Errorf("Gather: system %q; want %q", f.System, runtime.GOOS)
	}
	if f.CPUs <= 0 || f.MemoryBytes == 0 {
		t.Errorf("Gather: cpus %d memory %d; want both > 0", f.CPUs, f.MemoryBytes)
	}
	if !slices.Contains(f.IPs, "127.0.0.1") {
		t.Errorf("Gather: IPs %q; want 127.0.0.1 among them", f.IPs)
	}
	for _, ip := range f.IPs {
		if strings.Contains(ip, "%") {
			t.Errorf("Gather: IP %q has a zone", ip)
		}
	}
}

func TestUnameArch(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"} {
		if got := unameArch(goarch); got != want {
			t.Errorf("unameArch(%q) = %q; want %q", goarch, got, want)
		}
	}
}
