//! `GET /api/flows/{name}/openapi.json`: the OpenAPI 3.0 document of one API endpoint flow
//! (its invoke route, sync and `?async=true`, the runs route, the `x-api-client-token`
//! security scheme and every status code), built with serde_json. It needs the flow's token,
//! like invoke, so a scan cannot list flows.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{api_flow, auth, counted, not_found, TOKEN_HEADER};
use crate::listener::Observed;
use crate::manifest::Manifest;

pub async fn openapi(
    State(o): State<Observed>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(flow) = api_flow(&o, &name) else {
        return counted(&o, "", not_found(&name));
    };
    if let Err(refused) = auth::authorize(&o, &flow, request.headers(), request.extensions()) {
        return counted(&o, &name, refused.into_response());
    }
    let doc = document(&flow.entry.manifest);
    counted(&o, &name, (StatusCode::OK, Json(doc)).into_response())
}

/// A response with the error body.
fn failure(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The 429 of an address that presented too many wrong tokens ([`crate::throttle`]).
fn too_many() -> Value {
    json!({
        "description": format!("Too many wrong {TOKEN_HEADER} from this address: the request was not looked at; try again after Retry-After seconds."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until this address may try again"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The OpenAPI document of the endpoint of `m`.
pub fn document(m: &Manifest) -> Value {
    let name = &m.name;
    let description = if m.description.is_empty() {
        format!("The flowhost flow {name} as an API endpoint.")
    } else {
        m.description.clone()
    };
    let any = json!({"description": "Any JSON value"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": m.title,
            "description": description,
            "version": env!("CARGO_PKG_VERSION"),
        },
        "security": [{"clientToken": []}],
        "paths": {
            format!("/api/flows/{name}/invoke"): {
                "post": {
                    "operationId": format!("invoke{name}"),
                    "summary": format!("Run {name}"),
                    "description": "Runs the flow with the request body as its input (an empty body is {}) as one atomic top-level run, and answers its output; with async=true, answers 202 with the run's id at once.",
                    "parameters": [{
                        "name": "async",
                        "in": "query",
                        "required": false,
                        "schema": {"type": "boolean", "default": false},
                        "description": "Answer 202 at once; poll the run at href."
                    }],
                    "requestBody": {
                        "required": false,
                        "content": {"application/json": {"schema": any}}
                    },
                    "responses": {
                        "200": {
                            "description": "The run succeeded: the flow's output.",
                            "headers": {"x-flowhost-run-id": {"schema": {"type": "integer"}, "description": "The run's id"}},
                            "content": {"application/json": {"schema": any}}
                        },
                        "202": {
                            "description": "async=true: the run started.",
                            "headers": {"x-flowhost-run-id": {"schema": {"type": "integer"}, "description": "The run's id"}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Started"}}}
                        },
                        "400": failure("The body is not JSON (the error names the line and column)."),
                        "401": failure(&format!("Missing or wrong {TOKEN_HEADER}.")),
                        "429": too_many(),
                        "404": failure("No API endpoint flow of that name."),
                        "409": failure("The flow is switched off (flowhost flow enable NAME)."),
                        "413": failure("The body is over the server's api_max_body."),
                        "500": {
                            "description": "The run failed.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Failed"}}}
                        },
                        "503": failure("The server is shutting down.")
                    }
                }
            },
            "/api/runs/{id}": {
                "get": {
                    "operationId": format!("getRunOf{name}"),
                    "summary": "A run, as run history holds it",
                    "parameters": [{
                        "name": "id", "in": "path", "required": true,
                        "schema": {"type": "integer"}
                    }],
                    "responses": {
                        "200": {
                            "description": "The run.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}
                        },
                        "401": failure(&format!("Missing or wrong {TOKEN_HEADER}.")),
                        "429": too_many(),
                        "404": failure("No run of an API endpoint flow with that id.")
                    }
                }
            },
            format!("/api/flows/{name}/openapi.json"): {
                "get": {
                    "operationId": format!("openapiOf{name}"),
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "The OpenAPI document.", "content": {"application/json": {"schema": {"type": "object"}}}},
                        "401": failure(&format!("Missing or wrong {TOKEN_HEADER}.")),
                        "429": too_many(),
                        "404": failure("No API endpoint flow of that name.")
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "clientToken": {"type": "apiKey", "in": "header", "name": TOKEN_HEADER}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "string"}}
                },
                "Started": {
                    "type": "object", "required": ["run", "status", "href"],
                    "properties": {
                        "run": {"type": "integer"},
                        "status": {"type": "string", "enum": ["running"]},
                        "href": {"type": "string"}
                    }
                },
                "Failed": {
                    "type": "object", "required": ["run", "status", "error"],
                    "properties": {
                        "run": {"type": "integer"},
                        "status": {"type": "string", "enum": ["error", "timeout", "skipped"]},
                        "error": {"type": "string", "nullable": true}
                    }
                },
                "Run": {
                    "type": "object",
                    "properties": {
                        "run": {"type": "integer"},
                        "flow": {"type": "string"},
                        "trigger": {"type": "string"},
                        "status": {"type": "string", "enum": ["running", "ok", "error", "timeout", "skipped"]},
                        "started": {"type": "string", "format": "date-time"},
                        "ended": {"type": "string", "format": "date-time", "nullable": true},
                        "output": {"nullable": true},
                        "error": {"type": "string", "nullable": true}
                    }
                }
            }
        }
    })
}
