//! `#[metric_set]`: parse -> validate -> expand, with a fallback that still emits the
//! struct when something is wrong, so one mistake does not cascade.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Fields, GenericArgument, ItemStruct, PathArguments, Type};

use crate::args::{Errors, doc_brief, helper_args, parse_args, stability};
use crate::validate::{check_name, check_unit};

const SET_ARGS: &[&str] = &["name", "stability"];
const FIELD_ARGS: &[&str] = &["name", "unit", "stability", "max_buckets"];

/// A field whose type and arguments were understood.
struct Field {
    ident: syn::Ident,
    ty: TokenStream,
    name: String,
    unit: String,
    brief: String,
    stability: syn::Ident,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemStruct = match syn::parse2(item) {
        Ok(item) => item,
        Err(e) => {
            return syn::Error::new(
                e.span(),
                "#[metric_set] applies to a struct with named fields",
            )
            .to_compile_error();
        }
    };
    let mut errors = Errors::default();

    let (set_name, set_stability) = parse_set_args(args, &mut errors);
    if !item.generics.params.is_empty() {
        errors.push(
            item.generics.span(),
            "a metric set cannot be generic: its descriptor is a single `'static` value",
        );
    }
    let set_brief = doc_brief(&item.attrs).unwrap_or_else(|| {
        errors.push(
            item.ident.span(),
            format!(
                "metric set `{}` needs a doc comment: it becomes the set's brief",
                item.ident
            ),
        );
        String::new()
    });

    let mut fields = Vec::new();
    let named = match &mut item.fields {
        Fields::Named(named) => Some(named),
        other => {
            errors.push(other.span(), "a metric set needs named fields");
            None
        }
    };
    if let Some(named) = named {
        if named.named.len() > usize::from(u16::MAX) {
            errors.push(named.span(), "a metric set holds at most 65535 fields");
        }
        for field in &mut named.named {
            let (written_ty, parsed) = parse_field(field, &mut errors);
            match parsed {
                Some(f) => {
                    field.ty = syn::parse2(f.ty.clone()).expect("instrument type tokens parse");
                    if let Some(prev) = fields.iter().find(|p: &&Field| p.name == f.name) {
                        errors.push(
                            f.ident.span(),
                            format!(
                                "duplicate metric name `{}` (also used by field `{}`)",
                                f.name, prev.ident
                            ),
                        );
                    }
                    fields.push(f);
                }
                // Fallback: keep the field so later code still resolves; an unsupported
                // type becomes `()` so that it adds no error of its own.
                None => match written_ty {
                    Some(ty) => field.ty = syn::parse2(ty).expect("instrument type tokens parse"),
                    None => field.ty = syn::parse_quote!(()),
                },
            }
            field.attrs.retain(|a| !a.path().is_ident("metric"));
        }
    }

    if !errors.is_empty() {
        let compile_errors = errors.to_compile_errors();
        return quote! { #item #compile_errors };
    }
    generate(
        &item,
        &set_name.unwrap_or_default(),
        &set_brief,
        &set_stability,
        &fields,
    )
}

/// The set's `name` (if valid) and stability.
fn parse_set_args(args: TokenStream, errors: &mut Errors) -> (Option<String>, syn::Ident) {
    let set_args = parse_args(args, SET_ARGS, "`#[metric_set]`", errors);
    let mut set_name = None;
    let mut set_stability = format_ident!("Experimental");
    for arg in &set_args {
        match arg.key.as_str() {
            "name" => {
                if let Some(lit) = arg.str(errors) {
                    if let Err(msg) = check_name(&lit.value(), "metric set name", false) {
                        errors.push(lit.span(), msg);
                    }
                    set_name = Some(lit.value());
                }
            }
            "stability" => {
                if let Some(s) = arg.str(errors).and_then(|l| stability(&l, errors)) {
                    set_stability = s;
                }
            }
            _ => unreachable!("parse_args only returns known keys"),
        }
    }
    if set_name.is_none() && set_args.iter().all(|a| a.key != "name") {
        errors.push(
            Span::call_site(),
            "missing `name`: `#[metric_set(name = \"my.component\")]`",
        );
    }
    (set_name, set_stability)
}

/// The field's (checked) type, and the whole field when nothing is wrong with it.
fn parse_field(field: &syn::Field, errors: &mut Errors) -> (Option<TokenStream>, Option<Field>) {
    let Some(ident) = field.ident.clone() else {
        return (None, None);
    };
    let args = helper_args(&field.attrs, "metric", FIELD_ARGS, errors);
    let mut name = ident.to_string();
    let mut name_span = ident.span();
    let mut unit = None;
    let mut field_stability = format_ident!("Experimental");
    let mut max_buckets = None;
    for arg in &args {
        match arg.key.as_str() {
            "name" => {
                if let Some(lit) = arg.str(errors) {
                    name = lit.value();
                    name_span = lit.span();
                }
            }
            "unit" => {
                if let Some(lit) = arg.str(errors) {
                    match check_unit(&lit.value()) {
                        Ok(()) => unit = Some(lit.value()),
                        Err(msg) => errors.push(lit.span(), msg),
                    }
                }
            }
            "stability" => {
                if let Some(s) = arg.str(errors).and_then(|l| stability(&l, errors)) {
                    field_stability = s;
                }
            }
            "max_buckets" => {
                if let Some(lit) = arg.int(errors) {
                    match lit.base10_parse::<usize>() {
                        Ok(n) if (4..=16_384).contains(&n) => max_buckets = Some((n, lit.span())),
                        _ => errors.push(
                            lit.span(),
                            "`max_buckets` must be between 4 and 16384 (buckets per sign)",
                        ),
                    }
                }
            }
            _ => unreachable!("parse_args only returns known keys"),
        }
    }
    let name_ok = match check_name(&name, "metric name", true) {
        Ok(()) => true,
        Err(msg) => {
            errors.push(name_span, msg);
            false
        }
    };
    let brief = doc_brief(&field.attrs);
    if brief.is_none() {
        errors.push(
            ident.span(),
            format!("metric `{name}` needs a doc comment: it becomes the metric's brief"),
        );
    }
    if unit.is_none() && args.iter().all(|a| a.key != "unit") {
        errors.push(
            ident.span(),
            format!(
                "metric `{name}` needs a unit: `#[metric(unit = \"{{item}}\")]` (UCUM, e.g. `s`, `By`, `1`)"
            ),
        );
    }
    let ty = instrument_type(&field.ty, max_buckets, errors);
    let parsed = match (&ty, unit, brief) {
        (Some(ty), Some(unit), Some(brief)) if name_ok => Some(Field {
            ident,
            ty: ty.clone(),
            name,
            unit,
            brief,
            stability: field_stability,
        }),
        _ => None,
    };
    (ty, parsed)
}

/// Checks the written field type and returns it as written (imports stay used), with a
/// histogram budget from `max_buckets` applied.
fn instrument_type(
    ty: &Type,
    max_buckets: Option<(usize, Span)>,
    errors: &mut Errors,
) -> Option<TokenStream> {
    const KNOWN: &str = "Counter<u64|f64>, UpDownCounter<i64|f64>, Gauge<u64|i64|f64>, ObserveCounter<u64|f64>, ObserveUpDownCounter<i64|f64>, Mmsc, Histogram";
    let Type::Path(path) = ty else {
        errors.push(
            ty.span(),
            format!("unsupported field type; a metric set field is one of: {KNOWN}"),
        );
        return None;
    };
    let segment = path.path.segments.last()?;
    let kind = segment.ident.to_string();
    let allowed: &[&str] = match kind.as_str() {
        "Counter" | "ObserveCounter" => &["u64", "f64"],
        "UpDownCounter" | "ObserveUpDownCounter" => &["i64", "f64"],
        "Gauge" => &["u64", "i64", "f64"],
        "Mmsc" | "Histogram" => &[],
        _ => {
            errors.push(
                ty.span(),
                format!("unsupported field type `{kind}`; a metric set field is one of: {KNOWN}"),
            );
            return None;
        }
    };
    let generics: Vec<&GenericArgument> = match &segment.arguments {
        PathArguments::None => Vec::new(),
        PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        PathArguments::Parenthesized(p) => {
            errors.push(p.span(), "unexpected parenthesized arguments");
            return None;
        }
    };
    if max_buckets.is_some() && kind != "Histogram" {
        errors.push(
            max_buckets.map_or(ty.span(), |(_, s)| s),
            "`max_buckets` only applies to a `Histogram` field",
        );
    }
    match kind.as_str() {
        "Mmsc" => {
            if !generics.is_empty() {
                errors.push(segment.arguments.span(), "`Mmsc` takes no type parameter");
                return None;
            }
            Some(quote!(#ty))
        }
        "Histogram" => histogram_type(path, segment, &generics, max_buckets, errors),
        _ => {
            let value = match generics.as_slice() {
                [GenericArgument::Type(Type::Path(p))] => {
                    p.path.get_ident().map(ToString::to_string)
                }
                _ => None,
            };
            match value {
                Some(v) if allowed.contains(&v.as_str()) => Some(quote!(#ty)),
                _ => {
                    let (span, found) = match generics.first() {
                        Some(g) => (g.span(), format!(", not `{}`", quote!(#g))),
                        None => (ty.span(), String::new()),
                    };
                    errors.push(
                        span,
                        format!(
                            "`{kind}` records one of {}{found}: write `{kind}<{}>`",
                            allowed.join(", "),
                            allowed[0]
                        ),
                    );
                    None
                }
            }
        }
    }
}

fn generate(
    item: &ItemStruct,
    set_name: &str,
    set_brief: &str,
    set_stability: &syn::Ident,
    fields: &[Field],
) -> TokenStream {
    let p = quote!(::metric_schema::__private);
    let ident = &item.ident;
    let attrs = &item.attrs;
    let vis = &item.vis;
    let struct_fields = fields.iter().zip(item.fields.iter()).map(|(f, orig)| {
        let fattrs = &orig.attrs;
        let fvis = &orig.vis;
        let fident = &f.ident;
        let ty = &f.ty;
        quote!(#(#fattrs)* #fvis #fident: #ty)
    });
    let field_idents: Vec<_> = fields.iter().map(|f| &f.ident).collect();
    let field_types: Vec<_> = fields.iter().map(|f| &f.ty).collect();
    let indexes = (0..fields.len()).map(|i| i as u16);
    let descriptors = fields.iter().map(|f| {
        let (name, unit, brief, stab, ty) = (&f.name, &f.unit, &f.brief, &f.stability, &f.ty);
        quote! {
            #p::MetricsField {
                name: #name,
                unit: #unit,
                instrument: <#ty as #p::Instrument>::KIND,
                value_type: <#ty as #p::Instrument>::VALUE_TYPE,
                temporality: <#ty as #p::Instrument>::TEMPORALITY,
                brief: #brief,
                stability: #p::Stability::#stab,
            }
        }
    });
    let rust_type = format!("::{ident}");
    let registration = format_ident!("__METRIC_SCHEMA_SET_{}", ident);
    quote! {
        #(#attrs)*
        #[repr(C, align(64))]
        #vis struct #ident {
            #(#struct_fields,)*
        }

        impl #p::Default for #ident {
            fn default() -> Self {
                Self { #(#field_idents: #p::Default::default(),)* }
            }
        }

        impl #p::MetricSet for #ident {
            const DESCRIPTOR: &'static #p::MetricsDescriptor = &#p::MetricsDescriptor {
                name: #set_name,
                brief: #set_brief,
                stability: #p::Stability::#set_stability,
                fields: &[#(#descriptors),*],
                rust_type: ::core::concat!(::core::module_path!(), #rust_type),
            };

            #[inline]
            fn is_dirty(&self) -> bool {
                (0u64 #(| <#field_types as #p::Instrument>::dirty_word(&self.#field_idents))*) != 0
            }

            #[inline]
            fn snapshot_into(&self, out: &mut #p::SnapshotWriter<'_>) {
                if !<Self as #p::MetricSet>::is_dirty(self) {
                    return;
                }
                out.scoped(|out| {
                    #(<#field_types as #p::Instrument>::snapshot(&self.#field_idents, #indexes, out);)*
                });
            }
        }

        #[#p::linkme::distributed_slice(#p::METRIC_SETS)]
        #[linkme(crate = #p::linkme)]
        #[allow(non_upper_case_globals)]
        #[doc(hidden)]
        static #registration: &'static #p::MetricsDescriptor =
            <#ident as #p::MetricSet>::DESCRIPTOR;
    }
}

/// A `Histogram` field: the bucket budget from the type or from `max_buckets`.
fn histogram_type(
    path: &syn::TypePath,
    segment: &syn::PathSegment,
    generics: &[&GenericArgument],
    max_buckets: Option<(usize, Span)>,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let ty = path;
    let written = match generics {
        [] => None,
        [
            GenericArgument::Const(syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(n),
                ..
            })),
        ] => n.base10_parse::<usize>().ok(),
        _ => {
            errors.push(
                segment.arguments.span(),
                "a histogram takes at most an integer bucket budget, e.g. `Histogram<64>`; prefer `#[metric(max_buckets = 64)]`",
            );
            return None;
        }
    };
    let buckets = match (written, max_buckets) {
        (Some(w), Some((m, span))) if w != m => {
            errors.push(
                span,
                format!("`max_buckets = {m}` contradicts the type `Histogram<{w}>`"),
            );
            return None;
        }
        (_, Some((m, _))) => m,
        (Some(w), None) => w,
        (None, None) => return Some(quote!(#ty)),
    };
    // Keep the path as the user wrote it (their imports stay used); set the budget.
    let mut with_budget = path.clone();
    if let Some(last) = with_budget.path.segments.last_mut() {
        last.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<#buckets>));
    }
    Some(quote!(#with_budget))
}
