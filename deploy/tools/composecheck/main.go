// Command composecheck validates Compose files offline, the way `docker compose config` would,
// without a Docker daemon: it loads them with compose-go (the reference implementation of the
// Compose specification), which checks them against the specification's JSON schema, interpolates
// variables (from -env-file, else the project directory's .env, as docker compose does) and
// env_files, and checks consistency (unknown services in depends_on, missing
// networks and volumes, ...). On success it prints the resolved project as JSON for further checks.
//
// Usage: composecheck [-env-file FILE] [-project-dir DIR] COMPOSE_FILE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	var envFiles multiFlag
	projectDir := flag.String("project-dir", "", "project directory (default: the first file's directory)")
	flag.Var(&envFiles, "env-file", "env file used for interpolation (repeatable)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-env-file FILE] [-project-dir DIR] COMPOSE_FILE...")
		os.Exit(2)
	}

	opts := []cli.ProjectOptionsFn{cli.WithName("composecheck"), cli.WithResolvedPaths(true)}
	if *projectDir != "" {
		opts = append(opts, cli.WithWorkingDirectory(*projectDir))
	}
	// As docker compose: the -env-file files, else the project directory's .env when there is one.
	opts = append(opts, cli.WithEnvFiles(envFiles...))
	// Only the env files and the compose files decide the result, never the caller's environment.
	opts = append(opts, cli.WithDotEnv)

	options, err := cli.NewProjectOptions(flag.Args(), opts...)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

type multiFlag []string

func (m *multiFlag) String() string { return fmt.Sprint(*m) }

func (m *multiFlag) Set(value string) error {
	*m = append(*m, value)
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose file invalid:", err)
	os.Exit(1)
}
