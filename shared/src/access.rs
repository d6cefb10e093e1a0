//! What a Lambda function may do to the table and the bucket. Every route of the route table
//! names the capabilities its handler needs on the AWS backend ([`crate::http::routes`]), and
//! so does the finalize function ([`FINALIZE`]); `scripts/gen-template.py` turns them into each
//! function's IAM policy, and the `template` test checks that every policy grants exactly that.
//!
//! A capability is the smallest group of IAM actions on one resource that some code path uses
//! together; the rows below say which calls of the AWS adapters (`store/dynamo.rs`,
//! `store/s3.rs`) each one covers. Nothing here is a wildcard but the bucket's objects: keys are
//! `tenant/attachment/version`, made at run time. The bucket is encrypted with S3-managed keys
//! (SSE-S3), which needs no KMS permission.

/// A resource a policy statement names, as the template writes its ARN: a CloudFormation
/// intrinsic function and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    pub name: &'static str,
    /// `GetAtt` or `Sub`.
    pub function: &'static str,
    pub argument: &'static str,
}

macro_rules! resources {
    ($($konst:ident = $function:literal, $argument:literal;)*) => {
        $(
            #[doc = concat!("`!", $function, " ", $argument, "`")]
            pub const $konst: Resource = Resource {
                name: stringify!($konst),
                function: $function,
                argument: $argument,
            };
        )*
    };
}

// `scripts/gen-template.py` reads these rows: keep one per line.
#[rustfmt::skip]
resources! {
    TABLE = "GetAtt", "Table.Arn";
    LEFTOVERS_INDEX = "Sub", "${Table.Arn}/index/gsi1";
    BUCKET = "GetAtt", "Bucket.Arn";
    OBJECTS = "Sub", "${Bucket.Arn}/*";
}

/// One thing a function may do: IAM actions on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `GetItem`, `BatchGetItem` and `Query` on the table: API keys (every route authenticates),
    /// parents, attachments, versions.
    TableRead,
    /// `PutItem`, `UpdateItem`, `DeleteItem` (also what `TransactWriteItems` checks for each
    /// of its items) and `BatchWriteItem` on the table.
    TableWrite,
    /// `Query` on the leftovers index: the sweep finds expired uploads and unfinished deletions.
    IndexRead,
    /// `GetObject`: reading an object (`GetObject`, `HeadObject`) and signing download links,
    /// which S3 checks against the signer's permissions when they are followed.
    ObjectRead,
    /// `ListBucket` on the bucket: S3 tells a caller that an object is missing (404) only if it
    /// may list the bucket, and answers 403 otherwise. Needed where the code looks for an object
    /// that may not be there yet (verifying a direct upload).
    BucketList,
    /// `PutObject`: storing an object and its thumbnail, signing form uploads, and starting,
    /// uploading parts of (signed links) and completing multipart uploads, which S3 all checks
    /// as `PutObject`.
    ObjectWrite,
    /// `DeleteObject`: deleting files and thumbnails, and cleaning up after a failed upload.
    ObjectDelete,
    /// `ListMultipartUploadParts`: which parts of a direct upload storage has received.
    MultipartList,
    /// `AbortMultipartUpload`: dropping an unfinished direct upload and its parts.
    MultipartAbort,
    /// `ListBucketMultipartUploads` on the bucket: the sweep finds the multipart uploads under
    /// the staging prefix that no upload waits for any more.
    UploadsList,
}

/// What a capability grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub resource: Resource,
    pub actions: &'static [&'static str],
}

macro_rules! grants {
    ($($cap:ident = $resource:ident: $($action:literal),+;)*) => {
        impl Capability {
            /// Every capability, in the order of the rows below.
            pub const ALL: &'static [Capability] = &[$(Capability::$cap),*];

            /// The IAM actions this capability grants, and on what.
            pub const fn grant(self) -> Grant {
                match self {
                    $(Capability::$cap => Grant { resource: $resource, actions: &[$($action),+] },)*
                }
            }
        }
    };
}

// `scripts/gen-template.py` reads these rows: keep one per line.
#[rustfmt::skip]
grants! {
    TableRead = TABLE: "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query";
    TableWrite = TABLE: "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem";
    IndexRead = LEFTOVERS_INDEX: "dynamodb:Query";
    ObjectRead = OBJECTS: "s3:GetObject";
    BucketList = BUCKET: "s3:ListBucket";
    ObjectWrite = OBJECTS: "s3:PutObject";
    ObjectDelete = OBJECTS: "s3:DeleteObject";
    MultipartList = OBJECTS: "s3:ListMultipartUploadParts";
    MultipartAbort = OBJECTS: "s3:AbortMultipartUpload";
    UploadsList = BUCKET: "s3:ListBucketMultipartUploads";
}

use Capability::*;

/// The finalize function (`storage_events`): an S3 "object created" event verifies a direct
/// upload as `POST /v1/attachments/{id}/complete` does (reads the object, which may be gone,
/// completes or aborts a multipart upload, stores the thumbnail, deletes a refused file, records
/// the outcome, promotes the verified object by a copy); the hourly sweep finds leftovers
/// through the index and removes or cancels them, and lists the staging prefix's objects and
/// multipart uploads for orphans.
// `scripts/gen-template.py` reads this line.
#[rustfmt::skip]
pub const FINALIZE: &[Capability] = &[TableRead, TableWrite, IndexRead, ObjectRead, BucketList, ObjectWrite, ObjectDelete, MultipartList, MultipartAbort, UploadsList];

/// Every (action, resource) pair that `needs` grants, sorted and without repeats.
pub fn permissions(needs: &[Capability]) -> Vec<(&'static str, Resource)> {
    let pairs = needs
        .iter()
        .map(|c| c.grant())
        .flat_map(|g| g.actions.iter().map(move |a| (*a, g.resource)));
    pairs
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_capabilities_grant_the_same_action_on_the_same_resource() {
        let all = Capability::ALL;
        let total: usize = all.iter().map(|c| c.grant().actions.len()).sum();
        assert_eq!(permissions(all).len(), total);
    }

    #[test]
    fn the_index_is_the_one_the_store_queries() {
        assert_eq!(
            LEFTOVERS_INDEX.argument,
            format!(
                "${{Table.Arn}}/index/{}",
                crate::store::dynamo::LEFTOVERS_INDEX
            )
        );
    }
}
