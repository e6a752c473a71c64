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
