package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// matrixKeys is the shape of a matrix as written; Matrix itself keeps the
// axes in file order, which a struct field cannot.
type matrixKeys struct {
	Axes    map[string]yaml.Node `yaml:"axes"`
	Include []map[string]string  `yaml:"include"`
	Exclude []map[string]string  `yaml:"exclude"`
}

// check walks the document beside the Go type it decodes into and refuses,
// at the line of the node, any key the type does not have and any scalar
// that does not decode into its field. Positions come from the nodes, so
// no message of the yaml package has to be taken apart.
func check(file string, n *yaml.Node, t reflect.Type) error {
	return checkNode(file, n, t)
}

func checkNode(file string, n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value leaves the zero value (or the default)
	}
	if t == reflect.TypeOf(Matrix{}) {
		t = reflect.TypeOf(matrixKeys{})
	}
	if t == reflect.TypeOf(yaml.Node{}) {
		return nil // read by hand later (matrix axes)
	}
	wrong := func(want string) error {
		return &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("wrong type: %s, want %s: see docs/config.md for the expected type", describe(n), want)}
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			break
		}
		if n.Kind != yaml.MappingNode {
			return wrong("a mapping of keys (" + strings.Join(keysOf(t), ", ") + ")")
		}
		fields := fieldsOf(t)
		name := t.Name()
		if t == reflect.TypeOf(matrixKeys{}) {
			name = "Matrix"
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Msg: fmt.Sprintf("unknown key %q in %s: remove it or fix its spelling (known keys: %s)", k.Value, section(name), strings.Join(keysOf(t), ", "))}
			}
			if err := checkNode(file, v, f.Type); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return wrong("a list")
		}
		for _, e := range n.Content {
			if err := checkNode(file, e, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return wrong("a mapping")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkNode(file, n.Content[i+1], t.Elem()); err != nil {
				return err
			}
		}
		return nil
	}
	// A scalar field: let the yaml package decide whether it fits.
	if n.Kind != yaml.ScalarNode {
		return wrong(scalarName(t))
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return wrong(scalarName(t))
	}
	return nil
}

// fieldsOf maps a struct's yaml keys to its fields.
func fieldsOf(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" || key == "" || !f.IsExported() {
			continue
		}
		m[key] = f
	}
	return m
}

// keysOf lists a struct's yaml keys in declaration order, for "did you mean" help.
func keysOf(t reflect.Type) []string {
	var ks []string
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key != "-" && key != "" {
			ks = append(ks, key)
		}
	}
	return ks
}

func section(typ string) string {
	switch typ {
	case "Config":
		return "the top level"
	case "ImageTest":
		return "an image's test"
	}
	return "a " + strings.ToLower(typ) + " section"
}

func scalarName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration such as 30s or 10m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	}
	return "a string"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "found a mapping"
	case yaml.SequenceNode:
		return "found a list"
	}
	return fmt.Sprintf("%q is %s", n.Value, strings.TrimPrefix(n.ShortTag(), "!!"))
}

// sortedMapKeys returns a map's keys in order, for stable messages.
func sortedMapKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
