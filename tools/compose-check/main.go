// Command compose-check loads a Compose project the way `docker compose config` does and prints
// the resolved project as JSON, or exits non-zero with the loader's error.
//
// Why: this machine (and CI) has no Docker engine, so `docker compose config` cannot run, yet the
// compose files are only worth something if the Compose implementation accepts them. compose-go is
// the library Docker Compose itself uses to parse, include, interpolate, validate (JSON schema of
// the Compose Specification) and check the consistency of a project, so loading through it here
// gives the same verdict without a daemon. tests/unit/test_compose.py asserts the invariants on
// the JSON this prints.
//
// Usage:
//
//	compose-check [-project-directory DIR] [-env-file FILE]... [-f FILE]... [-skip-env-resolution]
//
// Exit status: 0 and the project on stdout; 1 and "compose-check: <loader error>" on stderr when
// the project is invalid; 2 for bad usage. The output holds interpolated values (including
// secrets from the env file) exactly as `docker compose config` would print them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// repeated collects a flag given several times (-f a -f b), as docker compose accepts it.
type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }

func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

func main() {
	var files, envFiles repeated
	flags := flag.NewFlagSet("compose-check", flag.ContinueOnError)
	flags.Var(&files, "f", "compose file (repeatable; default: COMPOSE_FILE or compose.yaml/docker-compose.yml)")
	flags.Var(&envFiles, "env-file", "env file for interpolation (repeatable; default: <project dir>/.env if present)")
	projectDir := flags.String("project-directory", "", "project directory (default: directory of the first -f)")
	skipEnv := flags.Bool("skip-env-resolution", false,
		"do not read services' env_file contents (they are runtime inputs; lets a checkout without .env validate)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if flags.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "compose-check: unexpected arguments %q\n", flags.Args())
		os.Exit(2)
	}

	out, err := load(files, envFiles, *projectDir, *skipEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}

// load mirrors docker/compose's ProjectOptions.ToProject for `docker compose config`: the OS
// environment wins over the env files, explicit env files replace the default .env, paths are
// resolved against the project directory, and schema validation, interpolation, normalization and
// consistency checks are all on (compose-go's defaults, set explicitly so a library default change
// cannot silently weaken this check).
func load(files, envFiles []string, projectDir string, skipEnv bool) ([]byte, error) {
	fns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(projectDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithDefaultProfiles(),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	}
	if skipEnv {
		fns = append(fns, cli.WithoutEnvironmentResolution)
	}
	options, err := cli.NewProjectOptions(files, fns...)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	raw, err := project.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// Re-indent for people reading it; the tests parse it either way.
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	return json.MarshalIndent(tree, "", "  ")
}
