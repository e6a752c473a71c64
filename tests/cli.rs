//! `cairn::cli` in-process: stack names must tell stacks apart.
#![cfg(feature = "cli")]

use cairn::cli::{App, Cli, Command, Loaded, StackDef};

fn def(name: &str) -> StackDef {
    StackDef::custom(name, &[], |_| async {
        Err::<Loaded, _>(anyhow::anyhow!("never loaded: the names are refused first"))
    })
}

#[tokio::test]
async fn two_stacks_with_one_name_are_refused_before_any_is_loaded() {
    let cli = Cli {
        stack: Some("web".into()),
        json: false,
        backend: None,
        command: Command::Diff { out: None },
    };
    let err = App::new(vec![def("web"), def("db"), def("web")])
        .run(cli)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "two stacks are named \"web\": --stack could not tell them apart"
    );
}

#[test]
fn rotate_needs_exactly_one_of_node_all_or_due() {
    use clap::Parser;
    let parse = |args: &[&str]| Cli::try_parse_from([&["cairn", "rotate"][..], args].concat());
    assert!(parse(&["--stack", "web"]).is_err());
    assert!(parse(&["--stack", "web", "--node", "a", "--all"]).is_err());
    assert!(parse(&["--stack", "web", "--all", "--due"]).is_err());
    assert!(parse(&["--stack", "web", "--all", "--abandon"]).is_err());
    assert!(parse(&["--stack", "web", "--abandon"]).is_ok());
    let ok = parse(&["--stack", "web", "--node", "a", "--approve"]).unwrap();
    assert!(matches!(
        ok.command,
        Command::Rotate { node: Some(ref n), approve: true, .. } if n == "a"
    ));
}

#[tokio::test]
async fn rotate_without_a_stack_is_refused_naming_the_stacks() {
    let cli = Cli {
        stack: None,
        json: false,
        backend: None,
        command: Command::Rotate {
            node: None,
            all: true,
            due: false,
            abandon: false,
            approve: true,
            lock_wait: 0,
        },
    };
    let err = App::new(vec![def("web"), def("db")])
        .run(cli)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rotate needs --stack: it rotates one stack's nodes (one of web, db)"
    );
}
