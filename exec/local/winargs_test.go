package local

import (
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
)

func TestQuoteArg(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, `plain`},
		{``, `""`},
		{`two words`, `"two words"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\dir\`, `C:\dir\`},
		{`C:\my dir\`, `"C:\my dir\\"`},
		{`a\"b c`, `"a\\\"b c"`},
		{`a&b`, `a&b`},
	}
	for _, tt := range tests {
		if got := QuoteArg(tt.in); got != tt.want {
			t.Errorf("QuoteArg(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuoteCmdArg(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, `plain`},
		{`a&b`, `^"a^&b^"`},
		{`a|b`, `^"a^|b^"`},
		{`a^b`, `^"a^^b^"`},
		{`%PATH%`, `^"^%PATH^%^"`},
		{`!x!`, `^"^!x^!^"`},
		{`<in >out`, `^"^<in ^>out^"`},
		{`say "hi" & exit`, `^"say \^"hi\^" ^& exit^"`},
		{`(x)`, `^"^(x^)^"`},
		{`a&b\\`, `^"a^&b\\\\^"`},
	}
	for _, tt := range tests {
		if got := QuoteCmdArg(tt.in); got != tt.want {
			t.Errorf("QuoteCmdArg(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{`./x.bat 'a b' 'c&d'`, []string{"./x.bat", "a b", "c&d"}, ""},
		{`x.ps1 "a \"q\"" b\ c`, []string{"x.ps1", `a "q"`, "b c"}, ""},
		{`x.bat 'it'\''s'`, []string{"x.bat", "it's"}, ""},
		{`x.bat ''`, []string{"x.bat", ""}, ""},
		{`  `, nil, ""},
		{`x.bat 'open`, nil, "unterminated single"},
		{`x.bat "open`, nil, "unterminated double"},
	}
	for _, tt := range tests {
		got, err := SplitWords(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("SplitWords(%q) error = %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestBuildWinCommand(t *testing.T) {
	const cmd, ps = `C:\Windows\System32\cmd.exe`, `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`
	tests := []struct {
		name     string
		c        model.Command
		wantPath string
		wantLine string
		err      string
	}{
		{"line", model.Command{Line: `echo hi & ver`}, cmd, cmd + ` /d /s /c "echo hi & ver"`, ""},
		{"line cmd", model.Command{Line: `echo hi`, Shell: "cmd"}, cmd, cmd + ` /d /s /c "echo hi"`, ""},
		{"powershell", model.Command{Line: `Get-Date; "a b"`, Shell: "powershell"}, ps,
			ps + ` -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "Get-Date; \"a b\""`, ""},
		{"bad shell", model.Command{Line: `x`, Shell: "bash"}, "", "", `shell "bash"`},
		{"bat", model.Command{Line: `./run.bat 'a b' 'x&y' '%PATH%'`, FileName: "run.bat"}, cmd,
			cmd + ` /d /s /c ".\run.bat ^"a b^" ^"x^&y^" ^"^%PATH^%^""`, ""},
		{"cmd upper case", model.Command{Line: `RUN.CMD x`, FileName: "RUN.CMD"}, cmd, cmd + ` /d /s /c ".\RUN.CMD x"`, ""},
		{"ps1", model.Command{Line: `./s.ps1 'a b' c`, FileName: "s.ps1"}, ps,
			ps + ` -NoProfile -NonInteractive -ExecutionPolicy Bypass -File .\s.ps1 "a b" c`, ""},
		{"exe", model.Command{Line: `./tool.exe -v 'a "b"'`, FileName: "tool.exe"}, `.\tool.exe`, `.\tool.exe -v "a \"b\""`, ""},
		{"other extension runs the line", model.Command{Line: `python x.py`, FileName: "x.py"}, cmd, cmd + ` /d /s /c "python x.py"`, ""},
		{"line not naming the file", model.Command{Line: `type run.bat`, FileName: "run.bat"}, cmd, cmd + ` /d /s /c "type run.bat"`, ""},
		{"unbalanced quote", model.Command{Line: `./run.bat 'x`, FileName: "run.bat"}, "", "", "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildWinCommand(tt.c, cmd, ps)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("BuildWinCommand error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil || got.Path != tt.wantPath || got.CmdLine != tt.wantLine {
				t.Errorf("BuildWinCommand = %+v, %v;\nwant path %q line %q", got, err, tt.wantPath, tt.wantLine)
			}
		})
	}
}
