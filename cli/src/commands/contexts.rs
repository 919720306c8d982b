//! contexts, context create|show|delete, start, stop.

use ninaivalaigal::memory_v1::{
    CreateContextRequest, DeleteContextRequest, GetContextRequest, ListContextsRequest,
    StartRecordingRequest, StopRecordingRequest,
};

use crate::{
    client::App,
    exit::{Failure, Kind},
    output::{
        ContextListView, ContextView, CreatedContextView, DeletedContextView, StartedView,
        StoppedView,
    },
};

const LIST_HINT: &str = "run `eM contexts` to see your contexts, or `eM context create NAME`";

fn missing(context: &str) -> Failure {
    Failure::new(
        Kind::Other,
        format!("the memory-service sent no context for {context}"),
    )
}

/// Every context of the caller, by name (all pages).
pub async fn list(app: &App) -> Result<ContextListView, Failure> {
    let mut contexts = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListContextsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
        };
        let page = app
            .memory(|mut client, bearer| {
                let request = bearer.request(request.clone());
                async move { client.list_contexts(request).await }
            })
            .await?;
        contexts.extend(page.contexts.into_iter().map(ContextView::from));
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(ContextListView { contexts })
}

/// Creates a context.
pub async fn create(
    app: &App,
    name: &str,
    description: &str,
) -> Result<CreatedContextView, Failure> {
    let request = CreateContextRequest {
        name: name.to_owned(),
        description: description.to_owned(),
        visibility: 0,
    };
    let response = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.create_context(request).await }
        })
        .await
        .map_err(|failure| {
            failure.hint_if(
                Kind::Conflict,
                format!("it exists already; record into it with `eM start --context {name}`"),
            )
        })?;
    let context = response.context.ok_or_else(|| missing(name))?;
    Ok(CreatedContextView {
        context: context.into(),
    })
}

/// One context.
pub async fn show(app: &App, name: &str) -> Result<ContextView, Failure> {
    let request = GetContextRequest {
        name: name.to_owned(),
    };
    let response = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.get_context(request).await }
        })
        .await
        .map_err(|failure| failure.hint_if(Kind::NotFound, LIST_HINT))?;
    Ok(response.context.ok_or_else(|| missing(name))?.into())
}

/// Deletes a context and its memories.
pub async fn delete(app: &App, name: &str) -> Result<DeletedContextView, Failure> {
    let request = DeleteContextRequest {
        name: name.to_owned(),
    };
    let response = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.delete_context(request).await }
        })
        .await
        .map_err(|failure| failure.hint_if(Kind::NotFound, LIST_HINT))?;
    Ok(DeletedContextView {
        name: name.to_owned(),
        deleted_memories: response.deleted_memories,
    })
}

/// Makes `name` the context that `remember` writes to.
pub async fn start(app: &App, name: &str) -> Result<StartedView, Failure> {
    let request = StartRecordingRequest {
        name: name.to_owned(),
    };
    let response = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.start_recording(request).await }
        })
        .await
        .map_err(|failure| {
            failure.hint_if(
                Kind::NotFound,
                format!("create it first with `eM context create {name}`"),
            )
        })?;
    Ok(StartedView {
        context: response.context.ok_or_else(|| missing(name))?.into(),
        previous: Some(response.previous).filter(|previous| !previous.is_empty()),
    })
}

/// Stops recording into `name`, or into whichever context is recording.
pub async fn stop(app: &App, name: Option<&str>) -> Result<StoppedView, Failure> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => list(app)
            .await?
            .contexts
            .into_iter()
            .find(|context| context.recording)
            .map(|context| context.name)
            .ok_or_else(|| {
                Failure::new(Kind::Conflict, "no context is recording")
                    .hint("start one with `eM start --context NAME`")
            })?,
    };
    let request = StopRecordingRequest { name: name.clone() };
    let response = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.stop_recording(request).await }
        })
        .await
        .map_err(|failure| failure.hint_if(Kind::NotFound, LIST_HINT))?;
    Ok(StoppedView {
        context: response.context.ok_or_else(|| missing(&name))?.into(),
    })
}
