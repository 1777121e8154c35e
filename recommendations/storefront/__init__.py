"""The demo storefront (`/demo/`, debug only): a shop page over the GraphQL API and recsite.js."""
