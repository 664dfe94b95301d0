package targets

import "context"

// Verify checks the signed proofs pushed images carry and prints what they say.
//
// For each image it prints who built it (the CI workflow and run), from
// which commit, what tested and scanned it and with what result, from the
// attestations signed by the key (attest.public_key in hoist.yaml, or
// HOIST_VERIFY_KEY). It fails, one line per problem, when an attestation
// that attest.require lists is missing, one does not verify with the key or
// is about another digest, or one says the image did not pass.
//
// Images: HOIST_VERIFY_REF=REF[,REF] (REPO@sha256:… or REPO:TAG), else the
// lock file's pushed digests (HOIST_IMAGES=a,b limits them).
func Verify(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = r.Verify(ctx, r.Out)
	return err
}
