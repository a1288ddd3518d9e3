package hostset

import (
	"strings"
	"testing"
)

func TestCompact(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hosts string
		want  string
	}{
		{"none", "", ""},
		{"one", "web01", "web01"},
		{"no digits", "bastion,gw", "bastion,gw"},
		{"run", "web1,web2,web3", "web[1-3]"},
		{"padded", "web01,web02,web03,web07", "web[01-03,07]"},
		{"padded through ten", "web08,web09,web10,web11", "web[08-11]"},
		{"padded and not", "n01,n1,n2", "n01,n[1-2]"},
		{"widths apart", "n001,n01", "n001,n01"},
		{"unsorted, repeats", "h3,h1,h2,h3", "h[1-3]"},
		{"two prefixes", "web01,db1,web02,db2,db3", "web[01-02],db[1-3]"},
		{"gaps", "h1,h3,h5,h6", "h[1,3,5-6]"},
		{"suffix", "rack1-a,rack2-a,rack2-b", "rack[1-2]-a,rack2-b"},
		{"last number varies", "r1n1,r1n2,r2n1", "r1n[1-2],r2n1"},
		{"ip", "10.0.0.1,10.0.0.2,10.0.0.3", "10.0.0.[1-3]"},
		{"too long a number", "x1234567890123456789012", "x1234567890123456789012"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hosts []string
			if tt.hosts != "" {
				hosts = strings.Split(tt.hosts, ",")
			}
			if got := Compact(hosts); got != tt.want {
				t.Errorf("Compact(%s) = %q; want %q", tt.hosts, got, tt.want)
			}
		})
	}
}
