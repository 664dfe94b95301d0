package gate

import (
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// TestAgainstPlan: each way a hand-edited lock got images pushed before is
// refused, listing what differs.
func TestAgainstPlan(t *testing.T) {
	v, _ := version.Parse("0.1.0")
	labels := func(name string) map[string]string {
		return map[string]string{"io.hoist.image": name, "org.opencontainers.image.version": "0.1.0"}
	}
	p := &plan.Plan{Version: v, Revision: "abc", Images: []plan.Image{
		{Name: "cpu", Ref: "demo/cpu:0.1.0", Labels: labels("cpu")},
		{Name: "cuda", Ref: "demo/cuda:0.1.0", Labels: labels("cuda")},
	}}
	good := func() *lock.Lock {
		return &lock.Lock{Version: "0.1.0", Revision: "abc", Images: []lock.Image{
			{Name: "cpu", Ref: "demo/cpu:0.1.0", Labels: labels("cpu")},
			{Name: "cuda", Ref: "demo/cuda:0.1.0", Labels: labels("cuda")},
		}}
	}
	tests := []struct {
		name   string
		edit   func(l *lock.Lock)
		only   []string
		wantIn string
	}{
		{name: "as planned", edit: func(*lock.Lock) {}},
		{name: "extra entry with a forged test", edit: func(l *lock.Lock) {
			l.Images = append(l.Images, lock.Image{Name: "backdoor", Ref: "demo/backdoor:0.1.0", Test: &lock.Test{Passed: true}})
		}, wantIn: "image backdoor is not in the plan"},
		{name: "missing entry", edit: func(l *lock.Lock) { l.Images = l.Images[:1] }, wantIn: "image cuda of the plan is not in it"},
		{name: "missing entry outside HOIST_IMAGES", edit: func(l *lock.Lock) { l.Images = l.Images[:1] }, only: []string{"cpu"}},
		{name: "other version", edit: func(l *lock.Lock) { l.Version = "9.9.9" }, wantIn: "it is for version 9.9.9, the run is for 0.1.0"},
		{name: "other commit", edit: func(l *lock.Lock) { l.Revision = "def" }, wantIn: "it was built from commit def, HEAD is abc"},
		{name: "swapped refs", edit: func(l *lock.Lock) { l.Images[0].Ref, l.Images[1].Ref = l.Images[1].Ref, l.Images[0].Ref }, wantIn: "cpu is recorded as demo/cuda:0.1.0, the plan builds demo/cpu:0.1.0"},
		{name: "swapped labels", edit: func(l *lock.Lock) { l.Images[0].Labels = labels("cuda") }, wantIn: `cpu has label io.hoist.image="cuda", the plan says "cpu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := good()
			tt.edit(l)
			err := AgainstPlan(p, l, "build/hoist/lock.json", tt.only)
			if tt.wantIn == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.Contains(err.Error(), "nothing pushed") {
				t.Fatalf("err = %v, want %q", err, tt.wantIn)
			}
		})
	}
}
