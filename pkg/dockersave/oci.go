package dockersave

// Media types of the manifests written from a save: OCI ones for an image
// layout (what Trivy reads), and the Docker schema 2 ones containerd records
// when it imports a save, so images look the same on a node whichever tool
// loaded them.
const (
	MediaOCIIndex    = "application/vnd.oci.image.index.v1+json"
	MediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaOCIConfig   = "application/vnd.oci.image.config.v1+json"
	MediaOCILayer    = "application/vnd.oci.image.layer.v1.tar" // uncompressed

	MediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar" // uncompressed
)

// LayoutFile is the oci-layout file of an image layout.
const LayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// Descriptor points at a blob of an image layout.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform is the platform of an index entry.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Manifest is an image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Index is an image index (an image layout's index.json).
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}
