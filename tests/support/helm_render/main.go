// Command helm_render renders a Helm chart's templates as `helm template` does, for tests on machines without helm
// (tests/chart_test.ts). Helm's engine is Go's text/template with Sprig functions; this program implements the part
// of it that deploy/chart uses, with Helm's semantics:
//
//   - every file under templates/ is parsed into one template set, so define/template/include see each other; files
//     whose name starts with "_" only define templates, NOTES.txt is rendered (to catch errors) but not printed;
//   - the data is .Values, .Release (Name, Namespace, Service, IsInstall, IsUpgrade, Revision) and .Chart (Name,
//     Version, AppVersion); missing keys render as empty (missingkey=zero, then "<no value>" removed, as Helm does);
//   - the functions are Go's built-ins plus include, required, default, quote, toYaml, indent, nindent, trunc,
//     trimSuffix, contains and b64enc, each as Sprig or Helm defines it;
//   - the output is one "---" document per non-empty file with Helm's "# Source:" comment; --include-crds prints the
//     crds/ files first, verbatim.
//
// Values, release and chart metadata come in as one JSON file (the test reads values.yaml and Chart.yaml with
// npm:yaml and merges its overrides), so only the standard library is needed:
//
//	helm_render --chart deploy/chart --input input.json [--include-crds]
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

type input struct {
	Values  map[string]interface{} `json:"Values"`
	Release map[string]interface{} `json:"Release"`
	Chart   map[string]interface{} `json:"Chart"`
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	inputPath := flag.String("input", "", "JSON file with Values, Release and Chart")
	includeCrds := flag.Bool("include-crds", false, "print the crds/ files first, as helm template --include-crds")
	flag.Parse()
	if *chartDir == "" || *inputPath == "" {
		fmt.Fprintln(os.Stderr, "usage: helm_render --chart DIR --input FILE [--include-crds]")
		os.Exit(2)
	}
	out, err := render(*chartDir, *inputPath, *includeCrds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(chartDir, inputPath string, includeCrds bool) (string, error) {
	raw, err := os.ReadFile(inputPath)
	if err != nil {
		return "", err
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return "", fmt.Errorf("cannot read %s: %w", inputPath, err)
	}
	if in.Values == nil {
		in.Values = map[string]interface{}{}
	}
	chartName, _ := in.Chart["Name"].(string)
	if chartName == "" {
		return "", errors.New("Chart.Name is missing from the input")
	}
	data := map[string]interface{}{"Values": in.Values, "Release": in.Release, "Chart": in.Chart}

	var out strings.Builder
	if includeCrds {
		crds, err := listFiles(filepath.Join(chartDir, "crds"))
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		for _, rel := range crds {
			text, err := os.ReadFile(filepath.Join(chartDir, "crds", rel))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&out, "---\n# Source: %s/crds/%s\n%s", chartName, filepath.ToSlash(rel), text)
			if !bytes.HasSuffix(text, []byte("\n")) {
				out.WriteString("\n")
			}
		}
	}

	files, err := listFiles(filepath.Join(chartDir, "templates"))
	if err != nil {
		return "", err
	}
	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(funcMap(root))
	names := make([]string, 0, len(files))
	for _, rel := range files {
		text, err := os.ReadFile(filepath.Join(chartDir, "templates", rel))
		if err != nil {
			return "", err
		}
		name := chartName + "/templates/" + filepath.ToSlash(rel)
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return "", fmt.Errorf("parse error in %s: %w", name, err)
		}
		names = append(names, name)
	}
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", fmt.Errorf("render error in %s: %w", name, err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" || strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s", name, strings.TrimLeft(text, "\n"))
		if !strings.HasSuffix(text, "\n") {
			out.WriteString("\n")
		}
	}
	return out.String(), nil
}

// listFiles returns the files under dir, relative to it, sorted.
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func funcMap(root *template.Template) template.FuncMap {
	return template.FuncMap{
		// Helm: runs a named template and returns its output, so it can be piped.
		"include": func(name string, data interface{}) (string, error) {
			var buf strings.Builder
			if err := root.ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return buf.String(), nil
		},
		// Helm: fails the rendering with the message when the value is missing or an empty string.
		"required": func(message string, value interface{}) (interface{}, error) {
			if value == nil {
				return value, errors.New(message)
			}
			if s, ok := value.(string); ok && s == "" {
				return value, errors.New(message)
			}
			return value, nil
		},
		"default": func(fallback interface{}, given ...interface{}) interface{} {
			if len(given) == 0 || empty(given[0]) {
				return fallback
			}
			return given[0]
		},
		"quote": func(values ...interface{}) string {
			quoted := make([]string, 0, len(values))
			for _, value := range values {
				if value != nil {
					quoted = append(quoted, fmt.Sprintf("%q", strval(value)))
				}
			}
			return strings.Join(quoted, " ")
		},
		// Helm: YAML of the value without the final newline.
		"toYaml": func(value interface{}) string {
			return strings.TrimSuffix(toYAML(value), "\n")
		},
		"indent":  indent,
		"nindent": func(spaces int, text string) string { return "\n" + indent(spaces, text) },
		"trunc": func(length int, text string) string {
			if length < 0 && len(text)+length > 0 {
				return text[len(text)+length:]
			}
			if length >= 0 && len(text) > length {
				return text[:length]
			}
			return text
		},
		"trimSuffix": func(suffix, text string) string { return strings.TrimSuffix(text, suffix) },
		"contains":   func(substring, text string) bool { return strings.Contains(text, substring) },
		"b64enc":     func(text string) string { return base64.StdEncoding.EncodeToString([]byte(text)) },
	}
}

func indent(spaces int, text string) string {
	pad := strings.Repeat(" ", spaces)
	return pad + strings.ReplaceAll(text, "\n", "\n"+pad)
}

// empty is Sprig's notion of an unset value, which default replaces.
func empty(value interface{}) bool {
	v := reflect.ValueOf(value)
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Complex64, reflect.Complex128:
		return v.Complex() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Ptr:
		return v.IsNil()
	}
	return false
}

func strval(value interface{}) string {
	switch v := value.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprintf("%v", v)
	}
}

// toYAML writes JSON-shaped data (maps, lists, strings, float64 numbers, booleans, null) as block YAML with sorted
// keys and lists at their key's indentation, as Helm's toYaml (sigs.k8s.io/yaml) does; strings YAML could read as
// something else are double-quoted.
func toYAML(value interface{}) string {
	var b strings.Builder
	writeNode(&b, value, 0)
	return b.String()
}

func writeNode(b *strings.Builder, value interface{}, level int) {
	switch v := value.(type) {
	case map[string]interface{}:
		if len(v) == 0 {
			b.WriteString(strings.Repeat(" ", level) + "{}\n")
			return
		}
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			b.WriteString(strings.Repeat(" ", level) + scalar(key) + ":")
			writeValue(b, v[key], level, level+2)
		}
	case []interface{}:
		if len(v) == 0 {
			b.WriteString(strings.Repeat(" ", level) + "[]\n")
			return
		}
		for _, item := range v {
			b.WriteString(strings.Repeat(" ", level) + "-")
			writeItem(b, item, level+2)
		}
	default:
		b.WriteString(strings.Repeat(" ", level) + scalar(v) + "\n")
	}
}

// writeValue writes a map entry's value after "key:": collections on the next lines (lists at the key's level).
func writeValue(b *strings.Builder, value interface{}, keyLevel, childLevel int) {
	switch v := value.(type) {
	case map[string]interface{}:
		if len(v) > 0 {
			b.WriteString("\n")
			writeNode(b, v, childLevel)
			return
		}
	case []interface{}:
		if len(v) > 0 {
			b.WriteString("\n")
			writeNode(b, v, keyLevel)
			return
		}
	case string:
		if block(b, v, childLevel) {
			return
		}
	}
	b.WriteString(" " + inline(value) + "\n")
}

// block writes a multi-line string as a literal block scalar (" |" and its lines at level), as yaml.v2 does.
func block(b *strings.Builder, text string, level int) bool {
	if !strings.Contains(text, "\n") || strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\n") ||
		strings.Contains(text, "\r") {
		return false
	}
	body := strings.TrimRight(text, "\n")
	switch trailing := len(text) - len(body); {
	case trailing == 0:
		b.WriteString(" |-\n")
	case trailing == 1:
		b.WriteString(" |\n")
	default:
		b.WriteString(" |+\n")
		body = text[:len(text)-1]
	}
	pad := strings.Repeat(" ", level)
	for _, line := range strings.Split(body, "\n") {
		if line == "" {
			b.WriteString("\n")
		} else {
			b.WriteString(pad + line + "\n")
		}
	}
	return true
}

// writeItem writes a list item after "-": a collection starts on the dash's line.
func writeItem(b *strings.Builder, value interface{}, level int) {
	switch v := value.(type) {
	case map[string]interface{}, []interface{}:
		if reflect.ValueOf(v).Len() > 0 {
			var inner strings.Builder
			writeNode(&inner, v, level)
			b.WriteString(" " + strings.TrimPrefix(inner.String(), strings.Repeat(" ", level)))
			return
		}
	case string:
		if block(b, v, level) {
			return
		}
	}
	b.WriteString(" " + inline(value) + "\n")
}

func inline(value interface{}) string {
	switch v := value.(type) {
	case map[string]interface{}:
		return "{}"
	case []interface{}:
		return "[]"
	default:
		return scalar(v)
	}
}

var plain = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./-]*$`)
var ambiguous = regexp.MustCompile(`^(?i:y|n|yes|no|true|false|on|off|null|~)$`)

func scalar(value interface{}) string {
	switch v := value.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		if plain.MatchString(v) && !ambiguous.MatchString(v) {
			return v
		}
		var buf bytes.Buffer
		encoder := json.NewEncoder(&buf)
		encoder.SetEscapeHTML(false)
		_ = encoder.Encode(v)
		return strings.TrimSuffix(buf.String(), "\n")
	default:
		return scalar(fmt.Sprintf("%v", v))
	}
}
