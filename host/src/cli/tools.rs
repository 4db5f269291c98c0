//! `latchkey tools ls | call --url <mcp-url>`: use a remote MCP server's tools directly, signing
//! in when the server asks (discovery, client registration, browser, token storage), and reusing
//! the stored credential next time. `--server <name>` does the same for a catalog server through
//! the gateway's own upstream (process, container or remote, with its injected credentials), for
//! debugging what the gateway would serve.

use std::future::Future;
use std::sync::Arc;

use clap::{Args, Subcommand};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::{Peer, RoleClient, ServiceError};
use serde_json::json;

use super::Failure;
use super::oauth::{InteractionArgs, split_scopes};
use super::output::{self, BOLD};
use crate::mcp::credential::{SignIn, UrlCredential};
use crate::mcp::remote::{self, Latchkey, Remote};
use crate::oauth::authorize::{Exchanged, Mode, Pending};
use crate::oauth::engine::{Engine, Overrides};
use crate::paths::Paths;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// List a remote MCP server's tools.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Call one of a remote MCP server's tools.
    Call {
        #[command(flatten)]
        server: ServerArgs,
        /// The tool's name, as `tools ls` shows it.
        tool: String,
        /// The arguments, as a JSON object: '{"message": "hello"}'.
        arguments: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Which server, and as which OAuth client when it asks for authorization.
#[derive(Args)]
pub struct ServerArgs {
    /// The server's MCP endpoint (Streamable HTTP), e.g. https://mcp.example.com/mcp.
    #[arg(long, required_unless_present = "server")]
    url: Option<String>,
    /// A catalog server (see `latchkey catalog ls`), run as the gateway runs it.
    #[arg(long, conflicts_with_all = ["url", "client_id", "issuer", "client_metadata_url", "scopes", "protocol_version"])]
    server: Option<String>,
    /// The id of an OAuth client you registered with the server's authorization server; without
    /// it latchkey uses a client metadata document or registers itself, where the server allows.
    #[arg(long)]
    client_id: Option<String>,
    /// Read that client's secret from standard input (or a hidden prompt), never from argv.
    #[arg(long, requires = "client_id", conflicts_with = "paste")]
    client_secret_stdin: bool,
    /// The issuer of the authorization server that registered `--client-id`. Required with
    /// `--client-secret-stdin`: latchkey refuses any other authorization server the MCP server
    /// names, so the secret, codes and tokens never reach one the client does not belong to.
    #[arg(long, requires = "client_id")]
    issuer: Option<String>,
    /// The URL of a Client ID Metadata Document describing latchkey, used as the client id where
    /// the authorization server accepts those.
    #[arg(long)]
    client_metadata_url: Option<String>,
    /// Scopes to request instead of those the server names, separated by commas or spaces.
    #[arg(long)]
    scopes: Option<String>,
    /// Speak this MCP protocol version (e.g. 2025-11-25) instead of finding out which era the
    /// server is from.
    #[arg(long, value_name = "VERSION")]
    protocol_version: Option<String>,
    #[command(flatten)]
    interaction: InteractionArgs,
}

pub fn run(command: ToolsCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            ToolsCommand::Ls { server: ServerArgs { server: Some(name), .. }, json } => {
                let tools = catalog_upstream(paths, &name)?.list_tools().await?;
                print_tools(&tools, json);
                Ok(())
            }
            ToolsCommand::Call { server: ServerArgs { server: Some(name), .. }, tool, arguments, json } => {
                let arguments = arguments.as_deref().map(parse_arguments).transpose()?;
                let mut params = CallToolRequestParams::new(tool.clone());
                params.arguments = arguments;
                match catalog_upstream(paths, &name)?.call_tool(params).await? {
                    rmcp::model::CallToolResponse::Complete(result) => print_result(&tool, &result, json),
                    // Input requests and tasks need an interactive MCP client, not a debugging command.
                    _ => Err(anyhow::anyhow!("`{tool}` asked for client input or started a task, which `tools call` cannot answer; use an MCP client through `latchkey gateway run`").into()),
                }
            }
            ToolsCommand::Ls { server, json } => {
                let session = Session::open(paths, server).await?;
                let tools = session.run("tools/list", |peer| async move { peer.list_all_tools().await }).await;
                session.close().await;
                print_tools(&tools?, json);
                Ok(())
            }
            ToolsCommand::Call { server, tool, arguments, json } => {
                let mut params = CallToolRequestParams::new(tool.clone());
                params.arguments = arguments.as_deref().map(parse_arguments).transpose()?;
                let session = Session::open(paths, server).await?;
                let result = session
                    .run("tools/call", |peer| {
                        let params = params.clone();
                        async move { peer.call_tool(params).await }
                    })
                    .await;
                session.close().await;
                print_result(&tool, &result?, json)
            }
        }
    })
}

/// The gateway's upstream for the catalog server `name`.
fn catalog_upstream(paths: Paths, name: &str) -> anyhow::Result<Arc<crate::gateway::upstream::Upstream>> {
    let engine = Arc::new(Engine::open(paths)?);
    for notice in engine.notices() {
        output::note(&notice);
    }
    let naming = crate::gateway::Naming { separator: None };
    let gateway = crate::gateway::Gateway::new(engine, &[name.to_string()], naming, std::time::Duration::from_secs(60))?;
    Ok(gateway.upstreams().next().expect("the gateway has the one server asked for").clone())
}

/// A session with a server known by its URL, signing in through the browser when it asks.
struct Session {
    remote: Remote<Latchkey, UrlCredential<Browser>>,
    service: RunningService<RoleClient, Latchkey>,
}

impl Session {
    async fn open(paths: Paths, args: ServerArgs) -> anyhow::Result<Session> {
        let url = crate::oauth::http::endpoint_url(args.url.as_deref().expect("clap requires --url without --server"))?;
        let protocol = args.protocol_version.as_deref().map(remote::protocol_version).transpose()?;
        if let Some(issuer) = &args.issuer {
            crate::oauth::engine::check_endpoint(issuer)?;
        }
        let client_secret = match args.client_secret_stdin {
            true => Some(super::secret::read_value("the client secret")?),
            false => None,
        };
        let engine = Engine::open(paths)?;
        for notice in engine.notices() {
            output::note(&notice);
        }
        let overrides = Overrides {
            client_id: args.client_id,
            client_secret,
            scopes: args.scopes.as_deref().map(split_scopes),
            client_metadata_url: args.client_metadata_url,
            issuer: args.issuer,
            site: Default::default(),
        };
        let credential = UrlCredential::new(Arc::new(engine), &url, overrides, Browser(args.interaction));
        let lifecycle = remote::lifecycle(protocol.as_ref());
        let remote = Remote::new(&url, Latchkey(protocol), lifecycle, Arc::new(credential))?;
        let service = remote.open().await?;
        Ok(Session { remote, service })
    }

    /// Run `request` (`what`, for errors), signing in again when the server asks.
    async fn run<T, F, Fut>(&self, what: &str, request: F) -> anyhow::Result<T>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.remote.authorized(|| request(self.service.peer().clone())).await.map_err(|failure| failure.explain(what, self.remote.url()))
    }

    /// End the session (a legacy server is told with DELETE).
    async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

/// Signing in as `oauth authorize` does: the browser, or a pasted URL.
struct Browser(InteractionArgs);

impl SignIn for Browser {
    fn mode(&self) -> Mode {
        super::oauth::mode(&self.0)
    }

    async fn complete(&self, pending: Pending) -> anyhow::Result<Exchanged> {
        super::oauth::complete(pending, &self.0).await
    }
}

fn parse_arguments(text: &str) -> anyhow::Result<JsonObject> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(arguments)) => Ok(arguments),
        Ok(_) => anyhow::bail!("the tool arguments must be a JSON object, like '{{\"name\": \"value\"}}'"),
        Err(error) => {
            anyhow::bail!("the tool arguments are not valid JSON ({error}); quote them for the shell, like '{{\"name\": \"value\"}}'")
        }
    }
}

fn print_tools(tools: &[rmcp::model::Tool], as_json: bool) {
    if as_json {
        output::json(&json!({ "tools": tools }));
        return;
    }
    if tools.is_empty() {
        anstream::println!("The server offers no tools.");
        return;
    }
    let mut table = output::table(&["TOOL", "DESCRIPTION"]);
    for tool in tools {
        let description = tool.description.as_deref().and_then(|text| text.lines().next()).unwrap_or("");
        table.add_row(vec![tool.name.to_string(), description.to_string()]);
    }
    output::print_table(&table);
}

fn print_result(tool: &str, result: &CallToolResult, as_json: bool) -> Result<(), Failure> {
    if as_json {
        output::json(result);
    } else {
        for content in &result.content {
            match content.as_text() {
                Some(text) => anstream::println!("{}", text.text),
                None => output::json(content),
            }
        }
        if result.content.is_empty()
            && let Some(structured) = &result.structured_content
        {
            output::json(structured);
        }
    }
    if result.is_error == Some(true) {
        return Err(anyhow::anyhow!("the tool {BOLD}{tool}{BOLD:#} reported an error (see its output above)").into());
    }
    Ok(())
}
