package hostlist

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// briefFormat describes hosts parsed as format in one line each, with
// all their groups.
func briefFormat(inv, format string) ([]string, []string) {
	hs, bad := ParseFormat(inv, format)
	var out, errs []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s %s:%d u=%s k=%s b=%v g=%s gs=%s", h.ID, h.Address, h.Port, h.User, h.KeyPath, becomeOf(h),
			h.Group, strings.Join(h.Groups, ",")))
	}
	for _, e := range bad {
		errs = append(errs, fmt.Sprintf("%d: %s", e.Line, e.Reason))
	}
	return out, errs
}

const yamlInventory = `# an Ansible YAML inventory
all:
  hosts:
    mail.example:
  vars:
    ansible_port: 2022
  children:
    web:
      hosts:
        web[1:2].example:
        web9:
          ansible_host: 10.0.0.9
          ansible_become: yes
          ansible_python_interpreter: /usr/bin/python3
      vars:
        ansible_user: www
    prod:
      children:
        web:
        db:
          hosts:
            db1: {ansible_host: 10.0.1.1, ansible_port: 2200, ansible_ssh_private_key_file: /k/db}
      vars:
        ansible_user: ops
        ansible_become: true
    site:
      children:
        prod:
`

func TestParseFormats(t *testing.T) {
	tests := []struct {
		name   string
		format string
		inv    string
		want   []string
	}{
		{"ini: every group and its ancestors", FormatINI,
			"[web]\nw1\n[db]\nd1\nw1\n[prod:children]\nweb\ndb\n[site:children]\nprod\n[all:children]\nsite\n",
			[]string{"w1 w1:22 u= k= b=false g=web gs=web,db,prod,site", "d1 d1:22 u= k= b=false g=db gs=db,prod,site"}},
		{"ini: a parent listed before its children", FormatAuto, "[prod:children]\nweb\n[web]\nw1\n",
			[]string{"w1 w1:22 u= k= b=false g=web gs=web,prod"}},
		{"ini: diamond", FormatAuto, "[a]\nh\n[b:children]\na\n[c:children]\na\n[d:children]\nb\nc\n",
			[]string{"h h:22 u= k= b=false g=a gs=a,b,c,d"}},
		{"yaml", FormatYAML, yamlInventory, []string{
			"mail.example mail.example:2022 u= k= b=false g= gs=",
			"web1.example web1.example:2022 u=www k= b=true g=web gs=web,prod,site",
			"web2.example web2.example:2022 u=www k= b=true g=web gs=web,prod,site",
			"web9 10.0.0.9:2022 u=www k= b=true g=web gs=web,prod,site",
			"db1 10.0.1.1:2200 u=ops k=/k/db b=true g=db gs=db,prod,site"}},
		{"yaml detected", FormatAuto, yamlInventory[strings.Index(yamlInventory, "all:"):], []string{
			"mail.example mail.example:2022 u= k= b=false g= gs=",
			"web1.example web1.example:2022 u=www k= b=true g=web gs=web,prod,site",
			"web2.example web2.example:2022 u=www k= b=true g=web gs=web,prod,site",
			"web9 10.0.0.9:2022 u=www k= b=true g=web gs=web,prod,site",
			"db1 10.0.1.1:2200 u=ops k=/k/db b=true g=db gs=db,prod,site"}},
		{"yaml top-level groups without all", FormatAuto, "web:\n  hosts:\n    w1:\nungrouped:\n  hosts:\n    u1:\n",
			[]string{"w1 w1:22 u= k= b=false g=web gs=web", "u1 u1:22 u= k= b=false g= gs="}},
		{"yaml host in two groups", FormatYAML, "all:\n  children:\n    a:\n      hosts: {h1: {ansible_user: x}}\n    b:\n      hosts: {h1: }\n",
			[]string{"h1 h1:22 u=x k= b=false g=a gs=a,b"}},
		{"roster", FormatRoster, "web1:\n  host: 192.168.42.1\n  user: fred\n  sudo: True\n  port: 2222\n  priv: /k/web\n  tty: true\n  minion_opts: {a: 1}\n" +
			"h2.example:\n  user: root\nbare.example:\n",
			[]string{"web1 192.168.42.1:2222 u=fred k=/k/web b=true g= gs=", "h2.example h2.example:22 u=root k= b=false g= gs=",
				"bare.example bare.example:22 u= k= b=false g= gs="}},
		{"roster detected", FormatAuto, "web1:\n  host: 10.0.0.1\n  sudo_user: root\n  sudo: yes\n",
			[]string{"web1 10.0.0.1:22 u= k= b=true g= gs="}},
		{"roster sudo_user", FormatRoster, "db1:\n  host: 10.0.0.2\n  sudo: true\n  sudo_user: postgres\n",
			[]string{"db1 10.0.0.2:22 u= k= b=true:postgres g= gs="}},
		{"yaml become_user", FormatYAML, "all:\n  hosts:\n    h1: {ansible_become: yes, ansible_become_user: app}\n",
			[]string{"h1 h1:22 u= k= b=true:app g= gs="}},
		{"host lines stay ini", FormatAuto, "10.0.0.1\nroot@h2:2222\n",
			[]string{"10.0.0.1 10.0.0.1:22 u= k= b=false g= gs=", "h2 h2:2222 u=root k= b=false g= gs="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := briefFormat(tt.inv, tt.format)
			if len(errs) > 0 || !slices.Equal(got, tt.want) {
				t.Errorf("ParseFormat(%q) =\n  %q, errors %q\nwant\n  %q", tt.format, got, errs, tt.want)
			}
		})
	}
}

func TestParseFormatErrors(t *testing.T) {
	tests := []struct {
		name   string
		format string
		inv    string
		want   []string // "LINE: substring"
	}{
		{"ini cycle", FormatINI, "[a]\nh\n[a:children]\nb\n[b:children]\nc\n[c:children]\na\n", []string{"8: group cycle: a → b → c → a"}},
		{"ini group in itself", FormatINI, "[a]\nh\n[a:children]\na\n", []string{"4: group cycle: a → a"}},
		{"yaml cycle", FormatYAML, "all:\n  children:\n    a:\n      hosts: {h: }\n      children:\n        b:\n          children:\n            a:\n",
			[]string{"8: group cycle: a → b → a"}},
		{"yaml syntax", FormatYAML, "all:\n  hosts:\n    h1: {\n", []string{"3: "}},
		{"yaml not a mapping", FormatYAML, "- a\n- b\n", []string{"1: want a mapping"}},
		{"yaml unknown group key", FormatYAML, "all:\n  host:\n    h1:\n", []string{"2: \"host\": want hosts, children or vars"}},
		{"yaml bad values", FormatYAML,
			"all:\n  hosts:\n    h1: {ansible_user: \"r`id`\"}\n    h2:\n      ansible_port: 0\n    h3:\n      ansible_become: maybe\n    \"a;b\":\n    h4:\n      ansible_host: [1, 2]\n",
			[]string{"3: '`'", "5: port", "7: true or false", "8: ';'", "10: want a single value"}},
		{"yaml conflicting duplicate", FormatYAML, "all:\n  children:\n    a:\n      hosts: {h1: {ansible_user: x}}\n    b:\n      hosts:\n        h1: {ansible_user: y}\n",
			[]string{"7: another user"}},
		{"yaml bad group name", FormatYAML, "all:\n  children:\n    \"a b\":\n", []string{"3: not a group name"}},
		{"yaml aliases refused", FormatYAML, "all:\n  vars: &v\n    ansible_user: x\n  children:\n    a:\n      vars: *v\n", []string{"6: want a mapping of variables"}},
		{"yaml over MaxHosts", FormatYAML, "all:\n  hosts:\n    h[0:9999]:\n    g[0:9999]:\n    f[0:9]:\n", []string{"5: over 20000 hosts"}},
		{"yaml two documents", FormatYAML, "all:\n---\nall:\n", []string{"1: one YAML document"}},
		{"roster password", FormatRoster, "web1:\n  host: 10.0.0.1\n  passwd: secret\n", []string{"3: FELIX_SSH_PASSWORD"}},
		{"roster bad values", FormatRoster, "a:\n  host: $(reboot)\nb:\n  port: x\nc:\n  sudo_user: Post;gres\n  sudo: true\nd: 7\n",
			[]string{"2: host", "4: port", "6: not allowed", "8: want a mapping"}},
		{"unknown format", "toml", "h1\n", []string{"0: format \"toml\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := briefFormat(tt.inv, tt.format)
			if len(got) != 0 {
				t.Errorf("returned hosts %q along with errors", got)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("errors %q; want %d: %q", errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				line, sub, _ := strings.Cut(w, ": ")
				if !strings.HasPrefix(errs[i], line+": ") || !strings.Contains(errs[i], sub) {
					t.Errorf("error %d = %q; want line %s containing %q", i, errs[i], line, sub)
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct{ inv, want string }{
		{"", FormatINI},
		{"h1\nh2\n", FormatINI},
		{"[web]\nw1 ansible_host=10.0.0.1\n", FormatINI},
		{"fd00::1\n", FormatINI},
		{"all:\n", FormatYAML},
		{"web:\n  hosts:\n", FormatYAML},
		{"web1:\n  host: 10.0.0.1\n", FormatRoster},
	}
	for _, tt := range tests {
		if got := Detect(tt.inv); got != tt.want {
			t.Errorf("Detect(%q) = %q; want %q", tt.inv, got, tt.want)
		}
	}
}

// BenchmarkParseYAML parses a YAML inventory of MaxHosts hosts in 200
// groups, each under one of 20 parents under prod.
func BenchmarkParseYAML(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("all:\n  children:\n    prod:\n      children:\n")
	for p := range 20 {
		fmt.Fprintf(&sb, "        p%d:\n          children:\n", p)
		for g := range 10 {
			fmt.Fprintf(&sb, "            g%d_%d:\n              vars: {ansible_user: u%d}\n              hosts:\n", p, g, g)
			for h := range MaxHosts / 200 {
				fmt.Fprintf(&sb, "                h%d-%d-%d.example: {ansible_port: %d}\n", p, g, h, 22+h%5)
			}
		}
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		hs, bad := ParseYAML(text)
		if len(bad) > 0 || len(hs) != MaxHosts || len(hs[0].Groups) != 3 {
			b.Fatalf("%d hosts, %d errors %v", len(hs), len(bad), bad[:min(3, len(bad))])
		}
	}
}
