/*
 * What replica.c offers outside the deployments (the rest of it is inference_int.h's): the
 * directory of operator-registered models, and how a call reaches a replica.
 */
#ifndef LYCEUMD_INFERENCE_REPLICA_H
#define LYCEUMD_INFERENCE_REPLICA_H

#include <curl/curl.h>

/* The directory of operator-registered models (`lyceumd model add`): DATA/models. */
int inference_model_add(const char *data_dir, const char *id, const char *path);

/* Sets h up to call path on a replica listening on port of its own loopback: sockets are
 * made in its network namespace (*netns, which must outlive the transfer; -1: the host's)
 * and its API key goes in an Authorization header appended to *hdr (the caller sets
 * CURLOPT_HTTPHEADER to *hdr afterwards). Nothing of a replica answers without its key. */
void replica_curl(CURL *h, const int *netns, int port, const char *key, const char *path,
                  struct curl_slist **hdr);

#endif
