package api

import "github.com/gin-gonic/gin"

// storedDoc is a stored state document's revision.
type storedDoc struct {
	rev  int
	body string
}

// storedConfig reads a stored state document (rev 0: the latest).
func (s *Server) storedConfig(c *gin.Context, name string, rev int) (storedDoc, error) {
	return storedDoc{}, badRequestf("config %s: stored state documents are not in this build yet; give document", name)
}
