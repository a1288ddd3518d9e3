package model

import "testing"

func TestStates(t *testing.T) {
	for _, s := range FinalStates {
		if !s.Final() {
			t.Errorf("State(%q).Final() = false; want true", s)
		}
	}
	for _, s := range []State{StatePending, StateRunning, "", "bogus"} {
		if s.Final() {
			t.Errorf("State(%q).Final() = true; want false", s)
		}
	}
	if StateOK.Rank() != 0 || StateFailed.Rank() >= StateLost.Rank() || State("bogus").Rank() != len(FinalStates) {
		t.Errorf("Rank: ok %d, failed %d, lost %d, bogus %d; want ok first, failed before lost, bogus last",
			StateOK.Rank(), StateFailed.Rank(), StateLost.Rank(), State("bogus").Rank())
	}
	tests := []struct {
		s    JobState
		want bool
	}{{JobQueued, false}, {JobRunning, false}, {JobDone, true}, {JobCancelled, true}, {"bogus", false}}
	for _, tt := range tests {
		if got := tt.s.Final(); got != tt.want {
			t.Errorf("JobState(%q).Final() = %v; want %v", tt.s, got, tt.want)
		}
	}
}

func TestFileKind(t *testing.T) {
	for _, k := range []FileKind{KindFile, KindDir, KindSymlink} {
		got, err := ParseFileKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseFileKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	for _, s := range []string{"", "File", "fifo", "kind(3)"} {
		if _, err := ParseFileKind(s); err == nil {
			t.Errorf("ParseFileKind(%q) = nil error; want one", s)
		}
	}
}

func TestValidMode(t *testing.T) {
	for _, m := range []string{"", ModeAuto, ModeAgent, ModeSSH} {
		if err := ValidMode(m); err != nil {
			t.Errorf("ValidMode(%q) = %v; want nil", m, err)
		}
	}
	for _, m := range []string{"AUTO", "grpc", " ssh"} {
		if err := ValidMode(m); err == nil {
			t.Errorf("ValidMode(%q) = nil; want an error", m)
		}
	}
}

func TestStream(t *testing.T) {
	if Stdout.String() != "stdout" || Stderr.String() != "stderr" || Stream(9).String() != "unknown" {
		t.Errorf("Stream names = %q %q %q; want stdout stderr unknown", Stdout, Stderr, Stream(9))
	}
}

func TestAnnouncedTail(t *testing.T) {
	for _, tt := range []struct{ hosts, want int }{
		{0, AnnouncedOutput}, {1, AnnouncedOutput}, {256, AnnouncedOutput}, {2000, 8388}, {100000, 1024},
	} {
		if got := AnnouncedTail(tt.hosts); got != tt.want {
			t.Errorf("AnnouncedTail(%d) = %d; want %d", tt.hosts, got, tt.want)
		}
	}
	for _, n := range []int{10, 1000, 10000, 50000} {
		if total := 2 * n * AnnouncedTail(n); total > 2*AnnouncedTotal+2*n*1024 {
			t.Errorf("%d hosts keep %d bytes of tails; want at most twice AnnouncedTotal (+1 KiB floor each)", n, total)
		}
	}
}

func TestRuneStart(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"\xa9abc", "abc"},             // the end of é
		{"\x82\xac€", "€"},             // the end of €
		{"\x80\x80\x80\x80x", "\x80x"}, // not UTF-8: at most three bytes go
		{"\x80\x80", ""},
	} {
		if got := string(RuneStart([]byte(tt.in))); got != tt.want {
			t.Errorf("RuneStart(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
