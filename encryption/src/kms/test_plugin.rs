//! A KMS v2 plugin for tests: a real gRPC server on a unix socket, holding its keys in
//! memory, that can be switched to be down, slow or to answer garbage, and rotated to a new
//! key id. Built only with the `test-plugin` feature.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::grpc::pb;
use crate::aead::SecretKey;

/// How the plugin answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Correctly.
    Healthy,
    /// Every call fails with `Unavailable`.
    Down,
    /// Every call answers after this long.
    Slow(Duration),
    /// Encrypt answers an empty key id and a wrapped key over the size limit; status says
    /// unhealthy.
    Garbage,
}

#[derive(Debug)]
struct State {
    behaviour: Behaviour,
    primary: String,
    keys: BTreeMap<String, SecretKey>,
    calls: BTreeMap<&'static str, u64>,
}

/// The plugin's shared state (what the test switches).
#[derive(Debug, Clone)]
pub struct TestPlugin {
    socket: PathBuf,
    state: Arc<Mutex<State>>,
    shutdown: Arc<tokio::sync::Notify>,
}

fn aad(id: &str) -> Vec<u8> {
    [b"test-kms:".as_slice(), id.as_bytes()].concat()
}

impl TestPlugin {
    /// Starts a plugin listening at `socket` with one key.
    pub async fn start(socket: &Path) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)?;
        let key = SecretKey::generate().map_err(std::io::Error::other)?;
        let plugin = Self {
            socket: socket.to_path_buf(),
            state: Arc::new(Mutex::new(State {
                behaviour: Behaviour::Healthy,
                primary: "test-key-1".into(),
                keys: BTreeMap::from([("test-key-1".to_owned(), key)]),
                calls: BTreeMap::new(),
            })),
            shutdown: Arc::new(tokio::sync::Notify::new()),
        };
        let service = pb::key_management_service_server::KeyManagementServiceServer::new(Service(
            plugin.clone(),
        ));
        let shutdown = Arc::clone(&plugin.shutdown);
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown.notified())
                .await;
        });
        Ok(plugin)
    }

    /// The endpoint in upstream's form (`unix:///…`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Switches how it answers.
    pub fn set(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// A new primary key (the old ones still decrypt); returns its id.
    pub fn rotate(&self) -> String {
        let mut state = self.lock();
        let id = format!("test-key-{}", state.keys.len() + 1);
        if let Ok(key) = SecretKey::generate() {
            state.keys.insert(id.clone(), key);
            state.primary = id.clone();
        }
        id
    }

    /// Calls of `method` (`status`, `encrypt`, `decrypt`) so far.
    pub fn calls(&self, method: &str) -> u64 {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }

    async fn enter(&self, method: &'static str) -> Result<Behaviour, Status> {
        let behaviour = {
            let mut state = self.lock();
            *state.calls.entry(method).or_default() += 1;
            state.behaviour
        };
        match behaviour {
            Behaviour::Down => Err(Status::unavailable("test plugin is down")),
            Behaviour::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(behaviour)
            }
            b => Ok(b),
        }
    }
}

#[derive(Debug)]
struct Service(TestPlugin);

#[tonic::async_trait]
impl pb::key_management_service_server::KeyManagementService for Service {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let behaviour = self.0.enter("status").await?;
        let primary = self.0.lock().primary.clone();
        Ok(Response::new(pb::StatusResponse {
            version: "v2".into(),
            healthz: if behaviour == Behaviour::Garbage {
                "broken".into()
            } else {
                "ok".into()
            },
            key_id: primary,
        }))
    }

    async fn encrypt(
        &self,
        request: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        let behaviour = self.0.enter("encrypt").await?;
        if behaviour == Behaviour::Garbage {
            return Ok(Response::new(pb::EncryptResponse {
                ciphertext: vec![0; 4096],
                key_id: String::new(),
                annotations: Default::default(),
            }));
        }
        let (id, key) = {
            let state = self.0.lock();
            let id = state.primary.clone();
            (id.clone(), state.keys.get(&id).cloned())
        };
        let key = key.ok_or_else(|| Status::internal("no primary key"))?;
        let ciphertext = key
            .seal(&aad(&id), &request.into_inner().plaintext)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::EncryptResponse {
            ciphertext,
            key_id: id,
            annotations: [("version.kms.test.bulwark.dev".to_owned(), b"1".to_vec())]
                .into_iter()
                .collect(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        self.0.enter("decrypt").await?;
        let request = request.into_inner();
        let key = self.0.lock().keys.get(&request.key_id).cloned();
        let key = key.ok_or_else(|| Status::not_found("unknown key id"))?;
        let plaintext = key
            .open(&aad(&request.key_id), &request.ciphertext)
            .map_err(|_| Status::invalid_argument("cannot decrypt"))?;
        Ok(Response::new(pb::DecryptResponse { plaintext }))
    }
}
