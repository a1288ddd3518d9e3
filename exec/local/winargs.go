package local

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/felix-ops/felix/model"
)

// This file builds the command lines the Windows runner hands to
// CreateProcess. It is plain string work, built on every platform, so its
// tests run in CI on Linux as well as under Wine.

// Shells a line command may ask for on a Windows minion; "" is ShellCmd.
const (
	ShellCmd        = "cmd"
	ShellPowerShell = "powershell"
)

// QuoteArg quotes s as one argument for a program that splits its command
// line as CommandLineToArgvW and the C runtime do: inside double quotes,
// a run of backslashes is doubled before a quote (and before the closing
// quote) and a quote is escaped with a backslash. An argument without
// spaces, tabs or quotes is left as is.
func QuoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\v\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteByte(c)
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

// cmdSpecials are the characters cmd.exe acts on in a command line: its
// operators, grouping, redirection, its escape and variable expansion.
const cmdSpecials = "()%!^\"<>&|"

// QuoteCmdArg quotes s as one argument that passes through cmd.exe (a
// .bat or .cmd script's argument, or a program started by cmd /C) to the
// program unchanged: quoted as QuoteArg does (always when it holds one of
// cmd.exe's special characters), then every character cmd.exe
// treats specially — quotes included — escaped with ^, so that cmd sees
// no quoted region in which an escape would not apply. %VAR% becomes
// ^%VAR^%: cmd looks for a variable named "VAR^", finds none, and drops
// the carets, so the text arrives as written.
func QuoteCmdArg(s string) string {
	q := QuoteArg(s)
	if q == s && strings.ContainsAny(s, cmdSpecials) {
		// Quoted, so that a batch file's %1 keeps "a&b" whole (its own
		// echo %1 would run b otherwise); %~1 drops the quotes. s has no
		// quote (QuoteArg would have quoted it): only backslashes before
		// the closing quote are doubled.
		trail := len(s) - len(strings.TrimRight(s, `\`))
		q = `"` + s + strings.Repeat(`\`, trail) + `"`
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if strings.IndexByte(cmdSpecials, q[i]) >= 0 {
			b.WriteByte('^')
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// SplitWords splits a script command line into words as /bin/sh would
// without expanding anything: single quotes keep everything literally,
// double quotes keep everything but \" and \\, a backslash outside quotes
// escapes the next character. felix exec --script sends
// "./NAME 'arg' ..." in this form; the Windows runner re-quotes the words
// for the script's interpreter.
func SplitWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			inWord = true
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// WinCommand is what the Windows runner starts: the program and the whole
// command line given to CreateProcess (argument 0 included).
type WinCommand struct {
	Path    string // the program: cmd.exe, powershell.exe or the .exe itself
	CmdLine string
}

// BuildWinCommand chooses how to run cmd on Windows, where comspec is the
// path of cmd.exe (%ComSpec%) and powershell that of powershell.exe.
//
// A line (cmd.FileName empty) runs as `cmd.exe /d /s /c "LINE"` (cmd.exe
// parses LINE as typed at its prompt) or, with Shell "powershell", as
// `powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command
// LINE`. A script or file command whose line starts with the file's name
// (NAME or ./NAME, as felix exec --script sends it) picks the interpreter
// by the file's extension: .ps1 runs with powershell -File, .bat and .cmd
// with cmd /C, .exe directly; the remaining words are its arguments,
// re-quoted for that interpreter (QuoteCmdArg through cmd.exe, QuoteArg
// otherwise). Any other line, and a file of another extension, runs
// through the shell like a line.
func BuildWinCommand(cmd model.Command, comspec, powershell string) (WinCommand, error) {
	switch cmd.Shell {
	case "", ShellCmd, ShellPowerShell:
	default:
		return WinCommand{}, fmt.Errorf("shell %q: want cmd or powershell", cmd.Shell)
	}
	if cmd.FileName != "" {
		words, err := SplitWords(cmd.Line)
		if err != nil {
			return WinCommand{}, fmt.Errorf("command line %q: %w", cmd.Line, err)
		}
		named := len(words) > 0 && (words[0] == cmd.FileName || words[0] == "./"+cmd.FileName || words[0] == `.\`+cmd.FileName)
		if named && byExtension(cmd.FileName) {
			return scriptCommand(cmd.FileName, words[1:], comspec, powershell), nil
		}
	}
	if cmd.Shell == ShellPowerShell {
		return WinCommand{Path: powershell, CmdLine: QuoteArg(powershell) + " " + psFlags + " -Command " + QuoteArg(cmd.Line)}, nil
	}
	return WinCommand{Path: comspec, CmdLine: QuoteArg(comspec) + ` /d /s /c "` + cmd.Line + `"`}, nil
}

// psFlags start PowerShell for an unattended run of a command or script.
const psFlags = "-NoProfile -NonInteractive -ExecutionPolicy Bypass"

// byExtension reports whether the file name's extension picks its
// interpreter: .ps1, .bat, .cmd and .exe do; any other file runs by its
// command line through the shell.
func byExtension(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".ps1", ".bat", ".cmd", ".exe":
		return true
	}
	return false
}

// scriptCommand runs the file name (in the working directory) with args
// by the interpreter its extension (see byExtension) calls for.
func scriptCommand(name string, args []string, comspec, powershell string) WinCommand {
	file := `.\` + name
	switch strings.ToLower(path.Ext(name)) {
	case ".ps1":
		line := QuoteArg(powershell) + " " + psFlags + " -File " + QuoteArg(file)
		for _, a := range args {
			line += " " + QuoteArg(a)
		}
		return WinCommand{Path: powershell, CmdLine: line}
	case ".exe":
		line := QuoteArg(file)
		for _, a := range args {
			line += " " + QuoteArg(a)
		}
		return WinCommand{Path: file, CmdLine: line}
	}
	// .bat and .cmd.
	line := QuoteArg(comspec) + ` /d /s /c "` + QuoteCmdArg(file)
	for _, a := range args {
		line += " " + QuoteCmdArg(a)
	}
	return WinCommand{Path: comspec, CmdLine: line + `"`}
}
