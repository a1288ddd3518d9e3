package hostlist

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// brief describes parsed hosts in one line each.
func brief(inv string) ([]string, []string) {
	hs, bad := Parse(inv)
	var out, errs []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s %s:%d u=%s k=%s b=%v g=%s", h.ID, h.Address, h.Port, h.User, h.KeyPath, becomeOf(h), h.Group))
	}
	for _, e := range bad {
		errs = append(errs, fmt.Sprintf("%d: %s", e.Line, e.Reason))
	}
	return out, errs
}

// becomeOf is h's become, with ":USER" when it runs as another user.
func becomeOf(h Host) string {
	if h.BecomeUser != "" {
		return fmt.Sprintf("%v:%s", h.Become, h.BecomeUser)
	}
	return fmt.Sprint(h.Become)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		inv  string
		want []string
	}{
		{"plain lines", "10.0.0.1\nroot@10.0.0.2\ndeploy@h3.example:2222\n",
			[]string{"10.0.0.1 10.0.0.1:22 u= k= b=false g=", "10.0.0.2 10.0.0.2:22 u=root k= b=false g=",
				"h3.example h3.example:2222 u=deploy k= b=false g="}},
		{"comments, blanks, CRLF", "# hosts\r\n\r\n; ini comment\r\nh1 # trailing\r\nh2\t# tab\r\n",
			[]string{"h1 h1:22 u= k= b=false g=", "h2 h2:22 u= k= b=false g="}},
		{"ansible names and vars", "[db]\ndb1 ansible_host=10.0.1.1 ansible_port=2200 ansible_user=admin ansible_ssh_private_key_file=\"/k/db\" ansible_become=True\n",
			[]string{"db1 10.0.1.1:2200 u=admin k=/k/db b=true g=db"}},
		{"old spellings", "h1 ansible_ssh_host=10.0.0.9 ansible_ssh_port=2 ansible_ssh_user=x ansible_private_key_file=/k\n",
			[]string{"h1 10.0.0.9:2 u=x k=/k b=false g="}},
		{"group vars, all vars, host vars win", "[all:vars]\nansible_user=base\nansible_port=2022\n[web]\nw1\nw2 ansible_user=own\n[web:vars]\nansible_user = www\n[db]\nd1\n",
			[]string{"w1 w1:2022 u=www k= b=false g=web", "w2 w2:2022 u=own k= b=false g=web", "d1 d1:2022 u=base k= b=false g=db"}},
		{"become another user; root is the default", "[db]\nd1 ansible_become_user=postgres\nd2 ansible_become_user=root\n[db:vars]\nansible_become=yes\n",
			[]string{"d1 d1:22 u= k= b=true:postgres g=db", "d2 d2:22 u= k= b=true g=db"}},
		{"children inherit vars", "[web]\nw1\n[prod:children]\nweb\n[prod:vars]\nansible_become=yes\nansible_user=ops\n",
			[]string{"w1 w1:22 u=ops k= b=true g=web"}},
		{"a host in two groups keeps the first and merges settings", "[web]\nh1\n[prod]\nh1 ansible_user=ops\n[prod:vars]\nansible_port=2200\n",
			[]string{"h1 h1:2200 u=ops k= b=false g=web"}},
		{"ungrouped and all sections give no group", "[ungrouped]\nh1\n[all]\nh2\n",
			[]string{"h1 h1:22 u= k= b=false g=", "h2 h2:22 u= k= b=false g="}},
		{"numeric range with padding", "[web]\nweb[08:10].example\n",
			[]string{"web08.example web08.example:22 u= k= b=false g=web", "web09.example web09.example:22 u= k= b=false g=web",
				"web10.example web10.example:22 u= k= b=false g=web"}},
		{"range with step and letters", "db[1:5:2]-[a:b]\n",
			[]string{"db1-a db1-a:22 u= k= b=false g=", "db1-b db1-b:22 u= k= b=false g=", "db3-a db3-a:22 u= k= b=false g=",
				"db3-b db3-b:22 u= k= b=false g=", "db5-a db5-a:22 u= k= b=false g=", "db5-b db5-b:22 u= k= b=false g="}},
		{"ipv6 with a name", "v6 ansible_host=fd00::1 ansible_port=2222\n", []string{"v6 fd00::1:2222 u= k= b=false g="}},
		{"other variables ignored", "h1 ansible_python_interpreter=/usr/bin/python3 http_port=80 ansible_connection=ssh\n",
			[]string{"h1 h1:22 u= k= b=false g="}},
		{"same host twice is one", "h1\nh1\n", []string{"h1 h1:22 u= k= b=false g="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := brief(tt.inv)
			if len(errs) > 0 || !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q) =\n  %q, errors %q\nwant\n  %q", tt.inv, got, errs, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		inv  string
		want []string // "LINE: substring"
	}{
		{"metacharacters in every field", "a;b\nh ansible_user=r`id`\nh2 ansible_ssh_private_key_file=/k|x\nh3 ansible_host=a&b\n",
			[]string{"1: ';'", "2: '`'", "3: '|'", "4: '&'"}},
		{"dollar and space", "$(reboot)\nh ansible_host=\"a b\"\n", []string{"1: '$'", "2: host"}},
		{"leading dash everywhere", "-oProxyCommand=x\nh -x\nh2 ansible_user=-x\n", []string{"1: '-'", "2: key=value", "3: '-'"}},
		{"bad vars line", "[web:vars]\nansible_user\n", []string{"2: key=value"}},
		{"bad children line", "[web:children]\nnot a group\n", []string{"2: not a group"}},
		{"bad section keeps its lines quiet", "[a b]\nh;1\n[ok]\nh2\n", []string{"1: section"}},
		{"range with ansible_host", "web[1:3] ansible_host=10.0.0.1\n", []string{"1: same address"}},
		{"huge range", "h[1:100000]\n", []string{"1: at most"}},
		// 100 lines of 10,000 hosts each (2 KB of text): refused at the
		// third line, before the rest is expanded.
		{"ranges over the import's total", strings.Repeat("amp[0:9]x[0:999].example\n", 100), []string{"3: over 20000 hosts"}},
		{"become_user without become", "h1 ansible_become_user=root\n", []string{"1: without ansible_become"}},
		{"bad become", "h1 ansible_become=maybe\n", []string{"1: true or false"}},
		{"bad name with ansible_host", "root@h1 ansible_host=10.0.0.1\n", []string{"1: host name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := brief(tt.inv)
			if len(got) != 0 {
				t.Errorf("Parse(%q) returned hosts %q along with errors", tt.inv, got)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Parse(%q) errors %q; want %d: %q", tt.inv, errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				line, sub, _ := strings.Cut(w, ": ")
				if !strings.HasPrefix(errs[i], line+": ") || !strings.Contains(errs[i], sub) {
					t.Errorf("error %d = %q; want line %s containing %q", i, errs[i], line, sub)
				}
			}
		})
	}
	// The error list is bounded.
	_, bad := Parse(strings.Repeat("a;b\n", 1000))
	if len(bad) != MaxErrors {
		t.Errorf("%d errors for 1000 bad lines; want %d", len(bad), MaxErrors)
	}
}

// TestParseBadLines: every bad line is reported with its number, and the
// first ones say what is wrong (as the import's 400 shows them).
func TestParseBadLines(t *testing.T) {
	tests := []struct {
		name  string
		inv   string
		lines []int
		want  []string // substrings of the first three "line N: reason" errors
	}{
		{"shell metacharacters", "10.0.0.1\n10.0.0.2;reboot\nroot@$(reboot)\n`id`@h\na|b\na&b\n", []int{2, 3, 4, 5, 6}, []string{"line 2", ";"}},
		{"a space in the host", "ok.example\nbad host.example ansible_port=22\n", []int{2}, []string{"line 2"}},
		{"leading dash", "-oProxyCommand=reboot\n", []int{1}, []string{"line 1", "'-'"}},
		{"bad port", "h1:0\nh2:99999\nh3 ansible_port=x\n", []int{1, 2, 3}, []string{"line 1", "port"}},
		{"bad user", "Root@h1\nh2 ansible_user=-x\n", []int{1, 2}, []string{"line 1", "user"}},
		{"bad key", "h1 ansible_ssh_private_key_file=~/.ssh/id_rsa\nh2 ansible_ssh_private_key_file=/k;x\n", []int{1, 2}, []string{"line 1", "key", "~"}},
		{"bad ansible_host", "[web]\nweb1 ansible_host=$(reboot)\n", []int{2}, []string{"line 2", "host"}},
		{"bad section", "[web servers]\nweb1\n", []int{1}, []string{"line 1", "section"}},
		{"conflicting duplicate", "[a]\nh1 ansible_user=x\n[b]\nh1 ansible_user=y\n", []int{4}, []string{"line 4", "line 2"}},
		{"not key=value", "h1 ansible_user\n", []int{1}, []string{"line 1", "key=value"}},
		{"unsupported connection", "h1 ansible_connection=local\n", []int{1}, []string{"line 1", "ssh only"}},
		{"become a bad user", "h1 ansible_become=yes ansible_become_user=Post;gres\n", []int{1}, []string{"line 1", "not allowed"}},
		{"ipv6 needs a name", "[fd00::1]:22\n", []int{1}, []string{"line 1", "ansible_host"}},
		{"bad range", "web[9:1]\n", []int{1}, []string{"line 1", "range"}},
		{"control characters", "h1\x1b[2J\n", []int{1}, []string{"line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, bad := Parse(tt.inv)
			if len(hosts) != 0 {
				t.Errorf("Parse returned %d hosts along with errors", len(hosts))
			}
			var lines []int
			var msgs []string
			for _, e := range bad {
				lines = append(lines, e.Line)
				msgs = append(msgs, e.Error())
				if e.Reason == "" {
					t.Errorf("line %d: empty reason", e.Line)
				}
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("bad lines %v (%q); want %v", lines, msgs, tt.lines)
			}
			first := strings.Join(msgs[:min(3, len(msgs))], "; ")
			for _, w := range tt.want {
				if !strings.Contains(first, w) {
					t.Errorf("errors %q; want them to contain %q", first, w)
				}
			}
		})
	}
	for _, empty := range []string{"", "# only comments\n\n; and these\n", "[web]\n"} {
		if hosts, bad := Parse(empty); len(hosts) != 0 || len(bad) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no host and no error", empty, hosts, bad)
		}
	}
}

// TestParseRemoteTmp: ansible_remote_tmp is a host's remote_tmp, from its
// line or its groups; a relative one or one with .. is a bad line.
func TestParseRemoteTmp(t *testing.T) {
	tests := []struct {
		name, inv string
		want      []string // "ID REMOTE_TMP"
		wantErr   string   // "LINE: substring"
	}{
		{"host and group vars", "[web]\nw1 ansible_remote_tmp=/var/tmp/felix\nw2\n[web:vars]\nansible_remote_tmp='~/.ansible/tmp'\n[db]\nd1\n",
			[]string{"w1 /var/tmp/felix", "w2 ~/.ansible/tmp", "d1 "}, ""},
		{"relative", "h1 ansible_remote_tmp=rel/dir\n", nil, "1: absolute"},
		{"dot dot", "h1 ansible_remote_tmp=/tmp/../etc\n", nil, "1: .."},
		{"metacharacter", "h1 ansible_remote_tmp=/tmp/$(reboot)\n", nil, "1: '$'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, bad := Parse(tt.inv)
			var got, errs []string
			for _, h := range hs {
				got = append(got, h.ID+" "+h.RemoteTmp)
			}
			for _, e := range bad {
				errs = append(errs, fmt.Sprintf("%d: %s", e.Line, e.Reason))
			}
			line, sub, _ := strings.Cut(tt.wantErr, ": ")
			switch {
			case tt.wantErr == "" && (len(errs) > 0 || !slices.Equal(got, tt.want)):
				t.Errorf("Parse(%q) = %q, errors %q; want %q", tt.inv, got, errs, tt.want)
			case tt.wantErr != "" && (len(got) > 0 || len(errs) != 1 || !strings.HasPrefix(errs[0], line+": ") || !strings.Contains(errs[0], sub)):
				t.Errorf("Parse(%q) = %q, errors %q; want only the error %q", tt.inv, got, errs, tt.wantErr)
			}
		})
	}
}

// TestParseJumpArgs: ansible_ssh_common_args / ansible_ssh_extra_args that
// only name jump hosts become the host's ProxyJump; anything else in them
// is a bad line.
func TestParseJumpArgs(t *testing.T) {
	tests := []struct {
		name, inv string
		want      map[string]string // id -> ProxyJump
		bad       string            // substring of the only error
	}{
		{"-J on the host line", "h1 ansible_ssh_common_args='-J ops@bastion:2222'\n", map[string]string{"h1": "ops@bastion:2222"}, ""},
		{"-o ProxyJump in group vars", "[lab]\nh1\nh2 ansible_ssh_extra_args=\"-oProxyJump=b1,b2\"\n[lab:vars]\nansible_ssh_common_args=-o ProxyJump=gw\n",
			map[string]string{"h1": "gw", "h2": "b1,b2"}, ""},
		{"-Jhost and none", "h1 ansible_ssh_common_args=-Jgw\nh2 ansible_ssh_common_args='-J none'\n", map[string]string{"h1": "gw", "h2": "none"}, ""},
		{"empty args", "h1 ansible_ssh_common_args=''\n", map[string]string{"h1": ""}, ""},
		{"other option refused", "h1 ansible_ssh_common_args='-o StrictHostKeyChecking=no'\n", nil, "line 1: ansible_ssh_common_args"},
		{"ProxyCommand refused", "h1 ansible_ssh_extra_args='-o ProxyCommand=\"ssh -W %h:%p gw\"'\n", nil, "line 1"},
		{"-J with more refused", "h1 ansible_ssh_common_args='-J gw -v'\n", nil, "refuses other ssh options"},
		{"bad jump host", "h1 ansible_ssh_common_args='-J gw;id'\n", nil, "line 1: ansible_ssh_common_args: proxy jump"},
		{"unterminated quote", "h1 ansible_ssh_common_args='-J gw\n", nil, "line 1: unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, errs := Parse(tt.inv)
			if tt.bad != "" {
				if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.bad) {
					t.Fatalf("Parse errors %v; want one containing %q", errs, tt.bad)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("Parse errors %v", errs)
			}
			got := map[string]string{}
			for _, h := range hosts {
				got[h.ID] = h.ProxyJump
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ProxyJump by host %v; want %v", got, tt.want)
			}
		})
	}
}
