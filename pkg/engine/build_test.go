package engine

import "testing"

func TestBuiltinSyntax(t *testing.T) {
	for df, want := range map[string]bool{
		"# syntax=docker/dockerfile:1\nFROM a\n":               true,
		"# syntax=docker/dockerfile:1.7\nFROM a\n":             true,
		"# syntax=docker.io/docker/dockerfile:1.7.1\nFROM a\n": true,
		"# syntax=docker/dockerfile:1.7-labs\nFROM a\n":        false,
		"# syntax=example.com/my/frontend:2\nFROM a\n":         false,
		"# syntax=docker/dockerfile:2\nFROM a\n":               false,
		"FROM a\n":                                             false,
	} {
		if got := builtinSyntax([]byte(df)); got != want {
			t.Errorf("builtinSyntax(%q) = %v, want %v", df, got, want)
		}
	}
}
