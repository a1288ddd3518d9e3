package model

import (
	"reflect"
	"testing"
)

func TestParseProxyJump(t *testing.T) {
	tests := []struct {
		in   string
		want []SSHHop
		ok   bool
	}{
		{"", nil, true},
		{"none", nil, true},
		{"bastion", []SSHHop{{Host: "bastion"}}, true},
		{"ops@bastion:2222", []SSHHop{{Host: "bastion", Port: 2222, User: "ops"}}, true},
		{"a,u@b.example:22,[fd00::1]:2200", []SSHHop{{Host: "a"}, {Host: "b.example", Port: 22, User: "u"}, {Host: "fd00::1", Port: 2200}}, true},
		{"[fd00::1]", []SSHHop{{Host: "fd00::1"}}, true},
		{"bastion;id", nil, false},
		{"bastion id", nil, false},
		{"$(id)", nil, false},
		{"`id`", nil, false},
		{"-oProxyCommand=x", nil, false},
		{"a,-b", nil, false},
		{"%h", nil, false},
		{"ssh://bastion", nil, false},
		{"a,,b", nil, false},
		{"a,", nil, false},
		{"a:0", nil, false},
		{"a:99999", nil, false},
		{"@a", nil, false},
		{"a|b", nil, false},
		{"a,b,c,d,e,f,g,h,i", nil, false},
	}
	for _, tt := range tests {
		got, err := ParseProxyJump(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseProxyJump(%q) error = %v; want ok %v", tt.in, err, tt.ok)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseProxyJump(%q) = %+v; want %+v", tt.in, got, tt.want)
		}
		if tt.ok && len(got) > 0 {
			back, err := ParseProxyJump(FormatProxyJump(got))
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("ParseProxyJump(FormatProxyJump(%q)) = %+v, %v; want %+v", tt.in, back, err, got)
			}
		}
	}
}
