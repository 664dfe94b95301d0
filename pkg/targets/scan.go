package targets

import "context"

// Scan checks every image in the lock file with the pinned Trivy against the policy in hoist.yaml; it fails listing image, package, versions and ID.
//
// Findings are recorded in the lock file; reports (Trivy's JSON, SARIF, a
// table and Markdown) go to the build folder's scan/, one set per image, and
// the Markdown summary is appended to $GITHUB_STEP_SUMMARY when set. Trivy
// comes from PATH when its version matches scan.trivy, else it is built once
// into HOIST_TOOLS_DIR (default ~/.cache/hoist/tools).
//
// An image already scanned with the same Trivy, scanners and DB (same image
// ID) is not scanned again: its report is reused and the policy re-applied.
//
// Environment: HOIST_TRIVY_DB (offline DB folder; no download),
// HOIST_IMAGES=a,b (only these), HOIST_PARALLEL=N, HOIST_RESCAN=1 (scan
// everything again), HOIST_TOOLS_DIR.
func Scan(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Scan(ctx)
}
