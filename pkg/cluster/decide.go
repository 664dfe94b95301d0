package cluster

// This file is the load's decision, apart from all I/O: given what each
// node holds and what Hoist loaded before, which images and blobs go to
// which nodes. load.go asks the nodes and streams; the tests here need no
// engine.

// loadPlan is what one load sends.
type loadPlan struct {
	send    []sendImage     // images some node lacks, in the order given
	refs    []string        // their engine references
	skipped []string        // references every node holds already
	want    map[string]bool // configs and layers some node that gets the image lacks
	targets []int           // indexes of the nodes that are sent something
}

// neverLoaded returns the references of images whose config is in no
// manifest Hoist wrote: the ones a load most likely sends.
func neverLoaded(images []Image, known map[string]loaded) []string {
	seen := map[string]bool{}
	for _, m := range known {
		seen[m.Config] = true
	}
	var out []string
	for _, img := range images {
		if !seen[img.ID] {
			out = append(out, img.Ref)
		}
	}
	return out
}

// needContent returns the nodes whose image list alone does not tell what
// they hold: a name of ours points at a manifest Hoist did not write, whose
// config only the node's content list names. Nodes in bad are left out.
func needContent(invs []inventory, bad []error, names []string, known map[string]loaded) []int {
	var ask []int
	for j := range invs {
		if bad[j] != nil {
			continue
		}
		for _, name := range names {
			if m, ok := invs[j].images[name]; ok && known[m].Config == "" {
				ask = append(ask, j)
				break
			}
		}
	}
	return ask
}

// creditKnown marks, on each node, the config and layers of every manifest
// Hoist wrote that the node's images point at: the manifest's digest covers
// them, so the node holds them without being asked.
func creditKnown(invs []inventory, known map[string]loaded) {
	for j := range invs {
		for _, m := range invs[j].images {
			if k, ok := known[m]; ok {
				invs[j].blobs[k.Config] = true
				for _, d := range k.Layers {
					invs[j].blobs[d] = true
				}
			}
		}
	}
}

// decide works out what to send. names[i] is images[i]'s containerd name;
// invs[j] is what node j holds (after creditKnown); bad[j] is why node j
// could not answer, and such a node is sent nothing. An image is current on
// a node when its name there points at a manifest whose config is the
// image's ID. The stream carries every image some node lacks, with the
// union of the blobs the lacking nodes do not hold.
func decide(images []Image, names []string, invs []inventory, bad []error, known map[string]loaded) loadPlan {
	current := func(j, i int) bool {
		if bad[j] != nil {
			return true // failed already: nothing is sent to it
		}
		m, ok := invs[j].images[names[i]]
		return ok && (known[m].Config == images[i].ID || invs[j].config[m] == images[i].ID)
	}
	p := loadPlan{want: map[string]bool{}}
	for i, img := range images {
		missing := false
		for j := range invs {
			if current(j, i) {
				continue
			}
			missing = true
			for _, d := range append([]string{img.ID}, img.DiffIDs...) {
				if !invs[j].blobs[d] {
					p.want[d] = true
				}
			}
		}
		if !missing {
			p.skipped = append(p.skipped, img.Ref)
			continue
		}
		p.send = append(p.send, sendImage{Name: names[i], ID: img.ID, DiffIDs: img.DiffIDs})
		p.refs = append(p.refs, img.Ref)
	}
	for j := range invs {
		for i := range images {
			if !current(j, i) {
				p.targets = append(p.targets, j)
				break
			}
		}
	}
	return p
}
