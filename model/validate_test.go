package model

import (
	"fmt"
	"strings"
	"testing"
)

// metachars are the shell metacharacters and word breakers no SSH setting
// may hold.
var metachars = []string{";", "$(", "`", " ", "|", "&", "\n", "\x00", ">", "<", "'", "\"", "\\", "*", "?", "!", "#", "~", "{", "(", "\t"}

func TestValidHost(t *testing.T) {
	for _, h := range []string{"10.0.0.7", "fd00::7", "::1", "web01", "web-01.example.com", "db_1.internal", "a", strings.Repeat("a.", 126) + "b"} {
		if err := ValidHost(h); err != nil {
			t.Errorf("ValidHost(%q) = %v; want nil", h, err)
		}
	}
	bad := []string{"", "-oProxyCommand=x", "a.-b", "a..b", ".a", "a.", "10.0.0.256", "1.2.3", strings.Repeat("a", 64) + ".b",
		strings.Repeat("a.", 127) + "b", "[fd00::1]", "root@h", "h:22", "h/24", "\xff"}
	for _, m := range metachars {
		bad = append(bad, "a"+m+"b")
	}
	for _, h := range bad {
		if err := ValidHost(h); err == nil {
			t.Errorf("ValidHost(%q) = nil; want an error", h)
		} else if !strings.Contains(err.Error(), "host") {
			t.Errorf("ValidHost(%q) = %v; want it to name the field", h, err)
		}
	}
}

func TestValidUser(t *testing.T) {
	for _, u := range []string{"", "root", "_svc", "deploy-user", "a.b", "u1", strings.Repeat("a", 32)} {
		if err := ValidUser(u); err != nil {
			t.Errorf("ValidUser(%q) = %v; want nil", u, err)
		}
	}
	bad := []string{"-x", "1abc", "Root", ".x", strings.Repeat("a", 33), "a@b", "a:b", "a/b"}
	for _, m := range metachars {
		bad = append(bad, "a"+m+"b")
	}
	for _, u := range bad {
		if err := ValidUser(u); err == nil || !strings.Contains(err.Error(), "user") {
			t.Errorf("ValidUser(%q) = %v; want an error naming user", u, err)
		}
	}
}

func TestValidKeyPath(t *testing.T) {
	for _, p := range []string{"", "/etc/felix/id_ed25519", "/home/op/.ssh/id_rsa", "/k/a-b_c.d+e@f,g:h=i%j"} {
		if err := ValidKeyPath(p); err != nil {
			t.Errorf("ValidKeyPath(%q) = %v; want nil", p, err)
		}
	}
	bad := []string{"-oProxyCommand=x", "~/.ssh/id_rsa", "keys/id", "./id", "/" + strings.Repeat("a", 4096)}
	for _, m := range metachars {
		bad = append(bad, "/k"+m+"x")
	}
	for _, p := range bad {
		if err := ValidKeyPath(p); err == nil || !strings.Contains(err.Error(), "key") {
			t.Errorf("ValidKeyPath(%q) = %v; want an error naming key", p, err)
		}
	}
}

func TestValidRemoteTmp(t *testing.T) {
	for _, d := range []string{"", "/tmp", "/var/tmp/felix", "/", "~/.felix/tmp", "~/t", "/a-b_c.d+e@f,g:h=i%j"} {
		if err := ValidRemoteTmp(d); err != nil {
			t.Errorf("ValidRemoteTmp(%q) = %v; want nil", d, err)
		}
	}
	bad := []string{"../x", "rel/dir", "/tmp/../etc", "/tmp/..", "/tmp/", "/tmp//x", "/tmp/./x", "~", "~/", "~root/x", "/x/~/y", "$HOME/tmp", "~/../x",
		"/t mp", "/tmp\n", "/tmp\x00", "-o", "/" + strings.Repeat("a", MaxRemoteTmp)}
	for _, m := range metachars {
		bad = append(bad, "/k"+m+"x")
	}
	for _, d := range bad {
		if err := ValidRemoteTmp(d); err == nil || !strings.Contains(err.Error(), "remote_tmp") {
			t.Errorf("ValidRemoteTmp(%q) = %v; want an error naming remote_tmp", d, err)
		}
	}
}

func TestValidPort(t *testing.T) {
	for _, p := range []int{1, 22, 65535} {
		if err := ValidPort(p); err != nil {
			t.Errorf("ValidPort(%d) = %v", p, err)
		}
	}
	for _, p := range []int{0, -1, 65536} {
		if err := ValidPort(p); err == nil || !strings.Contains(err.Error(), "port") {
			t.Errorf("ValidPort(%d) = %v; want an error naming port", p, err)
		}
	}
}

func TestParseHostSpec(t *testing.T) {
	tests := []struct {
		in, user, host string
		port           int
	}{
		{"10.0.0.7", "", "10.0.0.7", 0},
		{"root@10.0.0.7", "root", "10.0.0.7", 0},
		{"root@10.0.0.7:2222", "root", "10.0.0.7", 2222},
		{"web01.example:22", "", "web01.example", 22},
		{"fd00::7", "", "fd00::7", 0},
		{"[fd00::7]", "", "fd00::7", 0},
		{"deploy@[fd00::7]:2200", "deploy", "fd00::7", 2200},
	}
	for _, tt := range tests {
		u, h, p, err := ParseHostSpec(tt.in)
		if err != nil || u != tt.user || h != tt.host || p != tt.port {
			t.Errorf("ParseHostSpec(%q) = %q, %q, %d, %v; want %q, %q, %d", tt.in, u, h, p, err, tt.user, tt.host, tt.port)
		}
	}
	for _, in := range []string{"", "@h", "-x@h", "r@-h", "h:0", "h:x", "h:99999", "[fd00::7", "[fd00::7]:x", "a;b@h", "r@h;x", "h:22;x", "$(id)@h"} {
		if _, _, _, err := ParseHostSpec(in); err == nil {
			t.Errorf("ParseHostSpec(%q) = nil error; want one", in)
		}
	}
}

func TestValidFingerprint(t *testing.T) {
	const fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
	for _, in := range []string{fp, "sha256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", fp + "="} {
		if got, err := ValidFingerprint(in); err != nil || got != fp {
			t.Errorf("ValidFingerprint(%q) = %q, %v; want %q", in, got, err, fp)
		}
	}
	for _, in := range []string{"", "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", "MD5:" + fp[7:], "SHA256:abc", fp + "A",
		"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2;", "sha256:" + strings.Repeat("a", 64)} {
		if _, err := ValidFingerprint(in); err == nil || !strings.Contains(err.Error(), "fingerprint") {
			t.Errorf("ValidFingerprint(%q) = %v; want an error naming fingerprint", in, err)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"web01", true},
		{"web01.example.net", true},
		{"db_2-a", true},
		{strings.Repeat("a", 253), true},
		{"", false},
		{strings.Repeat("a", 254), false},
		{"a/b", false},
		{"a..b", false},
		{"..", false},
		{"a\x00b", false},
		{"\xff", false},
		{"-rf", false},
		{".hidden", false},
		{"a b", false},
		{"a;reboot", false},
		{"$(id)", false},
	}
	for _, tt := range tests {
		err := ValidID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidID(%q) = %v; want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		want string // substring of the error; "" for valid
	}{
		{"/etc/x", ""},
		{"/x", ""},
		{"/etc/app dir/x.conf", ""},
		{"/etc/..x", ""},
		{"/etc/x..", ""},
		{"/etc/\n", ""}, // odd, but a name; the transports never give it to a shell
		{"", "empty"},
		{"etc/x", "not absolute"},
		{"./x", "not absolute"},
		{"/etc/../x", "not clean"},
		{"/..", "not clean"},
		{"/etc/./x", "not clean"},
		{"/etc//x", "not clean"},
		{"//etc", "not clean"},
		{"/etc/x/", "not clean"},
		{"/etc/x/.", "not clean"},
		{"/etc/a\x00b", "NUL"},
		{"\x00", "NUL"},
		{"/", "names no file"},
	}
	for _, tt := range tests {
		err := CheckPath(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPath(%q) = %v; want nil", tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckPath(%q) = %v; want an error containing %q", tt.path, err, tt.want)
		}
	}
}

func TestCheckEntryPath(t *testing.T) {
	tests := []struct {
		rel  string
		want string // substring of the error; "" for valid
	}{
		{".", ""},
		{"a", ""},
		{"a/b/c.conf", ""},
		{"..a", ""},
		{"a..", ""},
		{"a/..b", ""},
		{".hidden", ""},
		{"", "empty or contains NUL"},
		{"a\x00b", "empty or contains NUL"},
		{"..", "inside the destination"},
		{"../x", "inside the destination"},
		{"a/../../x", "inside the destination"},
		{"a/../b", "inside the destination"},
		{"a/..", "inside the destination"},
		{"./a", "inside the destination"},
		{"a/./b", "inside the destination"},
		{"a//b", "inside the destination"},
		{"a/", "inside the destination"},
		{"/abs", "inside the destination"},
		{"/", "inside the destination"},
	}
	for _, tt := range tests {
		err := CheckEntryPath(tt.rel)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckEntryPath(%q) = %v; want nil", tt.rel, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckEntryPath(%q) = %v; want an error containing %q", tt.rel, err, tt.want)
		}
	}
}

func TestParseBatch(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"", true}, {"1", true}, {"10", true}, {"10%", true}, {"100%", true}, {"1%", true},
		{"0", false}, {"-1", false}, {"0%", false}, {"101%", false}, {"x", false}, {"5%%", false},
		{"%", false}, {"1.5", false}, {" 5", false},
	}
	for _, tt := range tests {
		if err := ParseBatch(tt.in); (err == nil) != tt.ok {
			t.Errorf("ParseBatch(%q) = %v; want ok: %v", tt.in, err, tt.ok)
		}
	}
}

func TestCheckFileName(t *testing.T) {
	for _, ok := range []string{"deploy.sh", "a", "-x", "with space", strings.Repeat("n", 255), "ünï"} {
		if err := CheckFileName(ok); err != nil {
			t.Errorf("CheckFileName(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/x", "x\x00", strings.Repeat("n", 256), "\xff"} {
		if err := CheckFileName(bad); err == nil {
			t.Errorf("CheckFileName(%q) = nil; want an error", bad)
		}
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		v    string
		want string // "" for ok
	}{
		{"web01 tier=1", ""},
		{"", ""},
		{"12345", "line is 5 bytes; at most 4"},
		{"a\x1b", "line must be printable UTF-8 text"},
		{"a\nb", "line must be printable UTF-8 text"},
		{"\xff", "line must be printable UTF-8 text"},
	}
	for _, tt := range tests {
		max := 4
		if tt.want == "" {
			max = 100
		}
		err := CheckText("line", tt.v, max)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("CheckText(%q) = %v; want %q", tt.v, err, tt.want)
		}
	}
}

func TestPutFileCheck(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		f    PutFile
		want string // "" for ok
	}{
		{"file", PutFile{Dest: "/etc/x", Size: 3, SHA256: sum, Mode: 0o4755}, ""},
		{"dir below root", PutFile{Dest: "/srv/t/d", Kind: KindDir, Root: "/srv/t"}, ""},
		{"symlink", PutFile{Dest: "/srv/l", Kind: KindSymlink, Link: "../x"}, ""},
		{"root /", PutFile{Dest: "/srv", Kind: KindDir, Root: "/"}, ""},
		{"unknown kind", PutFile{Dest: "/x", Kind: 9}, "unknown kind 9"},
		{"relative dest", PutFile{Dest: "x", Kind: KindDir}, "not absolute"},
		{"root not above", PutFile{Dest: "/srv/x", Kind: KindDir, Root: "/srv/x"}, "not an ancestor"},
		{"root unclean", PutFile{Dest: "/srv/x", Kind: KindDir, Root: "/srv/"}, "root: "},
		{"mode", PutFile{Dest: "/x", Kind: KindDir, Mode: 0o10755}, "bits beyond 07777"},
		{"bad sha", PutFile{Dest: "/x", SHA256: "abc"}, "not 64 hex digits"},
		{"negative size", PutFile{Dest: "/x", SHA256: sum, Size: -1}, "negative size"},
		{"dir with content", PutFile{Dest: "/x", Kind: KindDir, Size: 1}, "a dir has no content"},
		{"file with a link", PutFile{Dest: "/x", SHA256: sum, Link: "y"}, "a file has no link target"},
		{"symlink without target", PutFile{Dest: "/x", Kind: KindSymlink}, "empty link target"},
		{"target with NUL", PutFile{Dest: "/x", Kind: KindSymlink, Link: "a\x00b"}, "contains NUL"},
	}
	for _, tt := range tests {
		err := tt.f.Check()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Check() = %v; want %q", tt.name, err, tt.want)
		}
	}
}
