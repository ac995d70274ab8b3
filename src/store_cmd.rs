//! `bulwark store …`: read-only views of the store (never values).

use bulwark_store::{Engine, ListOptions, Store, StoreOptions};

use crate::EngineJob;

/// `bulwark store inspect`.
pub(crate) struct Inspect;

/// `bulwark store keys PREFIX`.
pub(crate) struct Keys(pub(crate) String);

/// Calls `each` for every key under `prefix`, a page at a time.
async fn for_each_key<E: Engine>(
    store: &Store<E>,
    prefix: &str,
    mut each: impl FnMut(&bulwark_store::KeyValue),
) -> anyhow::Result<()> {
    let mut token = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    limit: 1000,
                    continue_token: token.take(),
                    ..Default::default()
                },
            )
            .await?;
        page.items.iter().for_each(&mut each);
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(()),
        }
    }
}

impl EngineJob for Inspect {
    async fn run<E: Engine>(self, engine: E) -> anyhow::Result<()> {
        let store = Store::open(engine, StoreOptions::without_compaction()).await?;
        let revision = store.current_revision().await?;
        let compacted = store.compacted_revision().await?;
        let mut keys = 0usize;
        for_each_key(&store, "", |_| keys += 1).await?;
        println!("engine:     {}", store.engine().name());
        println!("revision:   {revision}");
        println!("compacted:  {compacted}");
        println!("keys:       {keys}");
        store.close().await?;
        Ok(())
    }
}

impl EngineJob for Keys {
    async fn run<E: Engine>(self, engine: E) -> anyhow::Result<()> {
        let store = Store::open(engine, StoreOptions::without_compaction()).await?;
        for_each_key(&store, &self.0, |kv| {
            println!("{}\t{}\t{} bytes", kv.key, kv.mod_revision, kv.value.len());
        })
        .await?;
        store.close().await?;
        Ok(())
    }
}
