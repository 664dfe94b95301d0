package lock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: any bytes in lock.json are read or refused in one line, never
// a panic; a refusal names the file.
func FuzzRead(f *testing.F) {
	for _, s := range []string{`{"schema": 1, "project": "d", "images": [{"name": "a"}]}`, `{"schema": 99}`, `{half`, ``, `null`, `[]`, `{"schema": 1, "images": null}`, `{"schema": 1, "images": [null]}`, strings.Repeat("[", 10000)} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "lock.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Read(p)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, p) || len(msg) > 2000 {
				t.Fatalf("refusal of %q: %q", b, msg)
			}
			return
		}
		if l.Schema != SchemaVersion {
			t.Fatalf("accepted schema %d", l.Schema)
		}
	})
}
