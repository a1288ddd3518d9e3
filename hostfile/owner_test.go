//go:build !windows

package hostfile

import (
	"strings"
	"testing"
)

func TestLookupOwner(t *testing.T) {
	tests := []struct {
		owner    string
		uid, gid int
		wantErr  string // "": no error
	}{
		{owner: "", uid: -1, gid: -1},
		{owner: "root", uid: 0, gid: -1},
		{owner: "root:", uid: 0, gid: -1},
		{owner: ":root", uid: -1, gid: 0},
		{owner: "root:root", uid: 0, gid: 0},
		{owner: "0:0", uid: 0, gid: 0},
		{owner: ":", wantErr: "names neither user nor group"},
		{owner: "no-such-user-felix", wantErr: "no-such-user-felix"},
		{owner: ":no-such-group-felix", wantErr: "no-such-group-felix"},
		{owner: "4242424242:0", wantErr: "4242424242"},
	}
	for _, tt := range tests {
		uid, gid, err := lookupOwner(tt.owner)
		switch {
		case tt.wantErr == "" && (err != nil || uid != tt.uid || gid != tt.gid):
			t.Errorf("lookupOwner(%q) = %d, %d, %v; want %d, %d", tt.owner, uid, gid, err, tt.uid, tt.gid)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || uid != -1 || gid != -1):
			t.Errorf("lookupOwner(%q) = %d, %d, %v; want -1, -1 and an error with %q", tt.owner, uid, gid, err, tt.wantErr)
		}
	}
}
