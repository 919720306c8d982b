//! Admin rights come only from someone who holds power already: the
//! operator command (`auth-service admin grant|revoke`) or an admin's
//! SetUserRole. A registration never makes an admin, whatever its email.
//! Every grant and revoke is audited with who acted.

#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::{
    ListUsersRequest, Role, SetUserRoleRequest, WhoAmIRequest,
    admin_service_client::AdminServiceClient,
};
use ninaivalaigal_tests::{TestPair, TestUser, auth_rows, bearer, spawn_pair, users::ADMIN_EMAIL};
use tonic::{Code, transport::Channel};

async fn role_of(pair: &TestPair, user: &TestUser) -> Role {
    pair.auth_client()
        .await
        .who_am_i(bearer(WhoAmIRequest {}, &user.access_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .role()
}

async fn set_role(
    admin: &mut AdminServiceClient<Channel>,
    token: &str,
    email: &str,
    role: Role,
) -> Result<Role, tonic::Status> {
    admin
        .set_user_role(bearer(
            SetUserRoleRequest {
                email: email.into(),
                role: role.into(),
            },
            token,
        ))
        .await
        .map(|response| response.into_inner().user.unwrap().role())
}

#[tokio::test]
async fn registering_the_harness_admin_email_does_not_make_an_admin() {
    let pair = spawn_pair().await;
    let user = pair.register_user(ADMIN_EMAIL).await;
    assert_eq!(role_of(&pair, &user).await, Role::User);
    let status = pair
        .admin_client()
        .await
        .list_users(bearer(ListUsersRequest::default(), &user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let events = auth_rows::audit_events(&pair.db).await;
    assert!(
        events
            .iter()
            .all(|event| event.event != "admin_role_granted")
    );
}

#[tokio::test]
async fn the_operator_grants_and_revokes_and_both_are_audited() {
    let pair = spawn_pair().await;
    let user = pair.register_user("boss@example.test").await;

    let said = pair
        .operator(&["admin", "grant", " Boss@Example.test"])
        .await
        .unwrap();
    assert!(
        said.contains("granted the admin role to boss@example.test"),
        "{said}"
    );
    assert_eq!(role_of(&pair, &user).await, Role::Admin);
    // Its existing token works at once: the role is read from the database.
    pair.admin_client()
        .await
        .list_users(bearer(ListUsersRequest::default(), &user.access_token))
        .await
        .unwrap();
    let said = pair
        .operator(&["admin", "grant", "boss@example.test"])
        .await
        .unwrap();
    assert!(said.contains("nothing changed"), "{said}");

    let said = pair
        .operator(&["admin", "revoke", "boss@example.test"])
        .await
        .unwrap();
    assert!(said.contains("revoked the admin role"), "{said}");
    assert!(said.contains("enabled administrators: 0"), "{said}");
    assert_eq!(role_of(&pair, &user).await, Role::User);

    let error = pair
        .operator(&["admin", "grant", "nobody@example.test"])
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("no account has email"),
        "{error:#}"
    );

    let events = auth_rows::audit_events(&pair.db).await;
    let changes: Vec<_> = events
        .iter()
        .filter(|event| event.event.starts_with("admin_role_"))
        .collect();
    assert_eq!(changes.len(), 2, "no-ops are not recorded: {changes:?}");
    assert_eq!(changes[0].event, "admin_role_granted");
    assert_eq!(changes[1].event, "admin_role_revoked");
    for change in &changes {
        assert_eq!(change.user_id, Some(user.id));
        assert_eq!(change.email.as_deref(), Some("boss@example.test"));
        assert_eq!(change.actor_id, None, "no account acted");
        assert_eq!(change.client_addr, None);
        assert!(change.detail.contains("operator_command"), "{change:?}");
    }
}

#[tokio::test]
async fn an_admin_grants_and_revokes_through_the_admin_service_and_is_audited() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let user = pair.register_user("grace@example.test").await;
    let mut admin = pair.admin_client().await;

    let role = set_role(
        &mut admin,
        &admin_user.access_token,
        "GRACE@example.test",
        Role::Admin,
    )
    .await
    .unwrap();
    assert_eq!(role, Role::Admin);
    // The new admin can act at once, and demote the one who promoted them.
    set_role(&mut admin, &user.access_token, ADMIN_EMAIL, Role::User)
        .await
        .unwrap();
    let status = admin
        .list_users(bearer(
            ListUsersRequest::default(),
            &admin_user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let events = auth_rows::audit_events(&pair.db).await;
    let changes: Vec<_> = events
        .iter()
        .filter(|event| event.event.starts_with("admin_role_"))
        .collect();
    // The harness's own grant (by the operator), then the two by admins.
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[1].event, "admin_role_granted");
    assert_eq!(changes[1].actor_id, Some(admin_user.id));
    assert_eq!(changes[1].user_id, Some(user.id));
    assert_eq!(changes[1].client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(changes[2].event, "admin_role_revoked");
    assert_eq!(changes[2].actor_id, Some(user.id));
    assert_eq!(changes[2].user_id, Some(admin_user.id));
}

#[tokio::test]
async fn a_non_admin_cannot_grant_even_to_themself() {
    let pair = spawn_pair().await;
    pair.register_admin().await;
    let user = pair.register_user("mallory@example.test").await;
    let mut admin = pair.admin_client().await;
    for email in [user.email.as_str(), ADMIN_EMAIL] {
        let status = set_role(&mut admin, &user.access_token, email, Role::Admin)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let status = admin
        .set_user_role(SetUserRoleRequest {
            email: user.email.clone(),
            role: Role::Admin.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(role_of(&pair, &user).await, Role::User);
    let events = auth_rows::audit_events(&pair.db).await;
    assert!(
        events
            .iter()
            .all(|event| event.user_id != Some(user.id) || !event.event.starts_with("admin_role_"))
    );
}

#[tokio::test]
async fn the_last_admin_cannot_demote_themself_and_bad_requests_are_refused() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let mut admin = pair.admin_client().await;
    let token = admin_user.access_token.as_str();
    let status = set_role(&mut admin, token, ADMIN_EMAIL, Role::User)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("no enabled administrator"),
        "{status:?}"
    );
    let status = set_role(&mut admin, token, "nobody@example.test", Role::Admin)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = set_role(&mut admin, token, ADMIN_EMAIL, Role::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // Still an admin, and setting the role it has is harmless.
    assert_eq!(
        set_role(&mut admin, token, ADMIN_EMAIL, Role::Admin)
            .await
            .unwrap(),
        Role::Admin
    );
}
