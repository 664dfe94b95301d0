package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistci/hoist/pkg/gobin"
	"github.com/hoistci/hoist/pkg/plan"
)

// compileGo compiles a base's Go packages (hoist.yaml bases[].go) for the
// engine's Linux into BuildDir/bases, adds the binaries to its root
// filesystem and folds their bytes into its hash, so the base is made again
// exactly when a binary changed.
func compileGo(ctx context.Context, b plan.Base, buildDir string, o Options) (plan.Base, error) {
	if len(b.Go) == 0 {
		return b, nil
	}
	files := map[string]string{}
	for in, host := range b.Rootfs.Files {
		files[in] = host
	}
	ins := make([]string, 0, len(b.Go))
	for in := range b.Go {
		ins = append(ins, in)
	}
	sort.Strings(ins)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", b.Hash)
	dir := filepath.Join(buildDir, "bases", strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(b.Ref))
	for _, in := range ins {
		out := filepath.Join(dir, path.Base(in))
		if err := gobin.Build(ctx, b.Go[in], out, gobin.Options{Arch: o.GoArch, Env: o.GoEnv}); err != nil {
			return b, fmt.Errorf("making base %s: %w", b.Ref, err)
		}
		sum, err := fileSum(out)
		if err != nil {
			return b, fmt.Errorf("making base %s: %w", b.Ref, err)
		}
		fmt.Fprintf(h, "go %s %s\n", in, sum)
		files[in] = out
	}
	b.Rootfs.Files = files
	b.Hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return b, nil
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
