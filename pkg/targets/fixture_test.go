package targets

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// svcMatrix is a project of n small images svc-01…svc-NN FROM a busybox
// base made on this machine, each tested by test, scanned with an offline
// DB: the release tests' repository. extra is appended to hoist.yaml.
// It returns the axis values and a hoist.yaml for another test command.
type svcMatrix struct {
	Project string
	Axis    []string
	bb, db  string
	extra   string
}

func newSvcMatrix(ctx context.Context, t *testing.T, e *engine.Engine, prefix string, n int, extra string) *svcMatrix {
	t.Helper()
	m := &svcMatrix{Project: testenv.Unique(prefix), bb: testenv.Binary(t, "busybox", "busybox-static"), extra: extra}
	var err error
	if m.db, err = scantest.WriteDB(ctx, testenv.RepoRoot(t), t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		m.Axis = append(m.Axis, fmt.Sprintf("%02d", i))
	}
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "-q", "--filter", "reference="+m.Project+"/*").Output()
		for _, id := range strings.Fields(string(out)) {
			e.Remove(context.Background(), id)
		}
	})
	return m
}

// Files are the repository's files with test as every image's test.
func (m *svcMatrix) Files(test string) map[string]string {
	return map[string]string{
		"svc/Dockerfile.tmpl": "FROM {{.base}}\nRUN echo {{.n}} > /n\n",
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
bases:
  - {ref: "%[1]s/busybox:1", busybox: %[2]s}
images:
  - name: svc-{{.n}}
    context: svc
    template: svc/Dockerfile.tmpl
    vars: {base: "%[1]s/busybox:1"}
    matrix:
      axes:
        n: [%[3]s]
    test: {command: [sh, -c, %[5]q]}
scan:
  db_dir: %[4]s
outside: [%[4]s]
`, m.Project, m.bb, strings.Join(m.Axis, ", "), m.db, test) + m.extra,
	}
}
