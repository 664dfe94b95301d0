package initrepo

import (
	"fmt"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{line: `HEALTHCHECK CMD ["/bin/check", "-q"]`, want: []string{"/bin/check", "-q"}},
		{line: `HEALTHCHECK --interval=5s --timeout=3s CMD curl -f http://localhost/ || exit 1`, want: []string{"sh", "-c", "curl -f http://localhost/ || exit 1"}},
		{line: `healthcheck cmd ["/ok"]`, want: []string{"/ok"}},
		{line: `HEALTHCHECK NONE`},
		{line: `HEALTHCHECK CMD`},
		{line: `RUN echo HEALTHCHECK CMD x`},
		{line: `HEALTHCHECK --interval=5s`},
	} {
		got, ok := healthcheck(tc.line)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || ok != (tc.want != nil) {
			t.Errorf("%s: got %q %v, want %q", tc.line, got, ok, tc.want)
		}
	}
}

func FuzzHealthcheck(f *testing.F) {
	for _, s := range []string{`HEALTHCHECK CMD ["/x"]`, "HEALTHCHECK --a=b CMD y", "HEALTHCHECK", "healthcheck  --x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if cmd, ok := healthcheck(line); ok && len(cmd) == 0 {
			t.Errorf("%q: ok with no command", line)
		}
	})
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{"My_Service": "my-service", "api": "api", "--": "app", "Web.App": "web-app"} {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}
