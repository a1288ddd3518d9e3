package facts

import (
	"context"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const probeDebian = `Linux noise from a login shell

@@felix-probe hostname
web-1

@@felix-probe os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian

@@felix-probe system
Linux

@@felix-probe kernel
6.1.0-18-amd64

@@felix-probe arch
x86_64

@@felix-probe cpus
8

@@felix-probe meminfo
MemTotal:       16318480 kB
MemFree:         1234567 kB

@@felix-probe ip-addr
1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host noprefixroute \       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.0.7/24 brd 10.0.0.255 scope global eth0\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.0.7/24 brd 10.0.0.255 scope global secondary eth0\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::1/64 scope link \       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8::7/64 scope global \       valid_lft forever preferred_lft forever

@@felix-probe uptime
12345.67 23456.78
`

func TestFromProbe(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Facts
		wantErr string
	}{
		{
			name: "debian",
			out:  probeDebian,
			want: Facts{Hostname: "web-1", System: "linux", OSName: "debian", OSVersion: "12", OSPretty: "Debian GNU/Linux 12 (bookworm)",
				Kernel: "6.1.0-18-amd64", Arch: "x86_64", CPUs: 8, MemoryBytes: 16318480 * 1024,
				IPs: []string{"10.0.0.7", "127.0.0.1", "::1", "2001:db8::7"}, UptimeSeconds: 12345},
		},
		{
			name: "hostname -I and missing sections",
			out:  "\n@@felix-probe hostname\nbox\n\n@@felix-probe os-release\n\n@@felix-probe cpus\n\n@@felix-probe hostname-i\n192.168.1.5 fe80::2 10.1.1.1 \n",
			want: Facts{Hostname: "box", IPs: []string{"10.1.1.1", "192.168.1.5"}},
		},
		{
			name: "malformed values are left empty",
			out:  "@@felix-probe kernel\n5.10\n@@felix-probe cpus\nmany\n@@felix-probe meminfo\nMemTotal: lots\n@@felix-probe uptime\n-1\n@@felix-probe arch\naarch64\n",
			want: Facts{Kernel: "5.10", Arch: "aarch64"},
		},
		{
			name:    "not probe output",
			out:     "sh: 1: syntax error\n",
			wantErr: "not the output of the facts probe",
		},
		{
			name:    "empty",
			out:     "",
			wantErr: "not the output of the facts probe",
		},
		{
			name:    "sections but nothing parses",
			out:     "@@felix-probe cpus\nzero\n@@felix-probe hostname\n\n",
			wantErr: "cpus: malformed count",
		},
		{
			name:    "only unknown sections",
			out:     "@@felix-probe nothing\nx\n",
			wantErr: "no facts found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromProbe([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromProbe error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromProbe: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromProbe = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestProbeScriptHere runs the probe script with this machine's /bin/sh
// and checks it agrees with Gather.
func TestProbeScriptHere(t *testing.T) {
	cmd := exec.Command("/bin/sh")
	cmd.Stdin = strings.NewReader(ProbeScript())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run probe script: %v", err)
	}
	got, err := FromProbe(out)
	if err != nil {
		t.Fatalf("FromProbe: %v\n%s", err, out)
	}
	want, err := Gather(context.Background())
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if got.Hostname != want.Hostname || got.Kernel != want.Kernel || got.Arch != want.Arch ||
		got.OSName != want.OSName || got.OSVersion != want.OSVersion || got.MemoryBytes != want.MemoryBytes {
		t.Errorf("probe facts = %+v\nGather = %+v", got, want)
	}
	if got.CPUs <= 0 || got.UptimeSeconds <= 0 {
		t.Errorf("probe facts = %+v; want CPUs and uptime", got)
	}
	if !slices.Contains(got.IPs, "127.0.0.1") {
		t.Errorf("probe IPs = %q; want 127.0.0.1 among them", got.IPs)
	}
}
